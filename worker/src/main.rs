use worker::Worker;
use worker::config::WorkerConfig;

#[tokio::main]
async fn main() {
    let config: WorkerConfig = uploads::config::load();
    uploads::telemetry::init(config.service.log.log_format);
    let worker = match Worker::connect(&config).await {
        Ok(worker) => worker,
        Err(err) => {
            eprintln!("startup failed: {err:#}");
            std::process::exit(1);
        }
    };
    worker.run(uploads::telemetry::shutdown_signal()).await;
}
