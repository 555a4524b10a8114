use worker::config::WorkerConfig;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config: WorkerConfig = uploads::config::load();
    uploads::telemetry::init(config.log.log_format);
    let _pool = match uploads::db::connect_and_migrate(&config.database).await {
        Ok(pool) => pool,
        Err(err) => {
            eprintln!("startup failed: {err:#}");
            std::process::exit(1);
        }
    };
    tracing::info!("worker started");
    uploads::telemetry::shutdown_signal().await;
    tracing::info!("worker stopped");
    Ok(())
}
