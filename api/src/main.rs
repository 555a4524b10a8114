use api::config::ApiConfig;
use tokio::net::TcpListener;
use tokio::sync::watch;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config: ApiConfig = uploads::config::load();
    uploads::telemetry::init(config.service.log.log_format);
    let state = match api::build_state(&config).await {
        Ok(state) => state,
        Err(err) => {
            tracing::error!("startup failed: {err:#}");
            eprintln!("startup failed: {err:#}");
            std::process::exit(1);
        }
    };
    let listener = TcpListener::bind(config.bind_addr)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on BIND_ADDR {}: {e}", config.bind_addr))?;
    tracing::info!(addr = %config.bind_addr, "api listening");

    let (stop_tx, mut stop_rx) = watch::channel(false);
    let shutdown = async move {
        let _ = stop_rx.wait_for(|stop| *stop).await;
    };
    if let Some(addr) = config.http.metrics_addr {
        let metrics =
            TcpListener::bind(addr).await.map_err(|e| anyhow::anyhow!("cannot listen on METRICS_ADDR {addr}: {e}"))?;
        tracing::info!(%addr, "metrics listening");
        // Stops with the process: a scrape has nothing to finish.
        tokio::spawn(api::serve(metrics, api::metrics_router(state.clone()), std::future::pending()));
    }
    let server = tokio::spawn(api::serve(listener, api::app(state), shutdown));

    uploads::telemetry::shutdown_signal().await;
    tracing::info!(grace = ?config.shutdown_grace, "shutting down: no new connections, finishing in-flight requests");
    let _ = stop_tx.send(true);
    match tokio::time::timeout(config.shutdown_grace, server).await {
        Ok(result) => result??,
        Err(_) => tracing::warn!("in-flight requests outlived the grace period; exiting anyway"),
    }
    Ok(())
}
