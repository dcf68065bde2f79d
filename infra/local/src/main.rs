//! `oratio`: the whole platform in one process.

use std::path::PathBuf;

use anyhow::{Context as _, bail};
use oratio::{Config, DEFAULT_PORT};

const USAGE: &str = "\
usage: oratio up [--port <port>] [--data-dir <dir>]

Runs the whole Oratio platform on 127.0.0.1.
  --port       port to listen on (env ORATIO_PORT, default 8600; 0 picks a free one)
  --data-dir   where everything is kept (env ORATIO_DATA_DIR, default ./.oratio)
";

fn parse(args: &[String]) -> anyhow::Result<Config> {
    let mut port = match std::env::var("ORATIO_PORT") {
        Ok(p) => p.parse().with_context(|| format!("ORATIO_PORT={p} is not a port"))?,
        Err(_) => DEFAULT_PORT,
    };
    let mut data_dir =
        std::env::var_os("ORATIO_DATA_DIR").map(PathBuf::from).unwrap_or_else(|| PathBuf::from(".oratio"));
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        let mut value = || rest.next().with_context(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--port" => {
                let v = value()?;
                port = v.parse().with_context(|| format!("--port {v} is not a port"))?;
            }
            "--data-dir" => data_dir = PathBuf::from(value()?),
            other => bail!("unknown argument {other}\n\n{USAGE}"),
        }
    }
    Ok(Config { port, data_dir, ..Config::default() })
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    match run().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("oratio: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("up") => {}
        Some("--version" | "-V") => {
            println!("oratio {}", env!("CARGO_PKG_VERSION"));
            return Ok(());
        }
        Some("--help" | "-h" | "help") | None => {
            print!("{USAGE}");
            return Ok(());
        }
        Some(other) => bail!("unknown command {other}\n\n{USAGE}"),
    }
    oratio_functions::logging::init();
    let config = parse(&args[1..])?;
    let platform = oratio::start(config).await?;
    eprintln!(
        "Oratio is up at {url}  (health: {url}/health, API: {url}/openapi.json, data: {dir})\nStop with Ctrl-C.",
        url = platform.url(),
        dir = platform.data_dir().display()
    );
    let stop = platform.stopper();
    tokio::spawn(async move {
        shutdown_signal().await;
        stop.stop();
    });
    platform.wait().await
}

async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("installing the SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    tracing::info!("shutting down");
}
