use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use worker::Worker;
use worker::config::WorkerConfig;

#[tokio::main]
async fn main() {
    let config: WorkerConfig = uploads::config::load();
    uploads::telemetry::init(config.service.log.log_format);
    let worker = match Worker::connect(&config).await {
        Ok(worker) => worker,
        Err(err) => startup_failed(format_args!("{err:#}")),
    };
    let stop_listener = CancellationToken::new();
    if let Some(addr) = config.metrics_addr {
        let listener = match TcpListener::bind(addr).await {
            Ok(listener) => listener,
            Err(err) => startup_failed(format_args!("cannot listen on WORKER_METRICS_ADDR {addr}: {err}")),
        };
        tracing::info!(%addr, "worker metrics listening");
        tokio::spawn(worker::listener::serve(listener, worker.uploads().clone(), stop_listener.clone()));
    }
    worker.run(uploads::telemetry::shutdown_signal()).await;
    stop_listener.cancel();
}

fn startup_failed(reason: std::fmt::Arguments) -> ! {
    eprintln!("startup failed: {reason}");
    std::process::exit(1);
}
