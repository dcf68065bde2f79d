//! `oratio`: the whole platform in one process.

use std::path::PathBuf;

use anyhow::{Context as _, bail};
use oratio::{Config, DEFAULT_PORT};

const USAGE: &str = "\
usage: oratio up [--port <port>] [--data-dir <dir>]
       oratio eval [--url <url>] [--corpus <dir>] [--only <slug,slug>]

oratio up    runs the whole Oratio platform on 127.0.0.1.
  --port       port to listen on (env ORATIO_PORT, default 8600; 0 picks a free one)
  --data-dir   where everything is kept (env ORATIO_DATA_DIR, default ./.oratio)

oratio eval  runs the evaluation corpus through the public API and prints, per SOP and in
             total: agents created, fact and citation accuracy, read-back, handoff recall,
             false-handoff rate, guardrail violations. It exits 1 when a figure falls short.
  --url        a running embedded platform (default: start one in a temporary directory,
               with the model ORATIO_LLM_URL names, else the local engine)
  --corpus     a corpus directory (default: the corpus built into this binary)
  --only       the SOPs to run, by directory name
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

fn main() -> std::process::ExitCode {
    // The child that reads one uploaded document, bounded, before any thread starts.
    if std::env::args().nth(1).as_deref() == Some(oratio_local::documents::CHILD_COMMAND) {
        return oratio_local::documents::serve_child();
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("oratio: starting the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run()) {
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
        Some("eval") => return evaluate(&args[1..]).await,
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

async fn evaluate(args: &[String]) -> anyhow::Result<()> {
    oratio_functions::logging::init();
    let (mut url, mut corpus, mut only) = (None, None, None);
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        let mut value = || rest.next().cloned().with_context(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--url" => url = Some(value()?),
            "--corpus" => corpus = Some(PathBuf::from(value()?)),
            "--only" => only = Some(value()?),
            other => bail!("unknown argument {other}\n\n{USAGE}"),
        }
    }
    let mut entries = match corpus {
        Some(dir) => oratio::eval::load(&dir)?,
        None => oratio::eval::bundled()?,
    };
    if let Some(only) = only {
        let wanted: Vec<&str> = only.split(',').map(str::trim).collect();
        entries.retain(|e| wanted.contains(&e.slug.as_str()));
    }
    // Without a platform to talk to, one of its own in a temporary directory.
    let (platform, _dir) = match url {
        Some(_) => (None, None),
        None => {
            let dir = tempfile::tempdir().context("a temporary directory")?;
            let config = Config { port: 0, data_dir: dir.path().to_path_buf(), ..Config::default() };
            (Some(oratio::start(config).await?), Some(dir))
        }
    };
    let url = url.unwrap_or_else(|| platform.as_ref().map(|p| p.url()).unwrap_or_default());
    let report = oratio::eval::run(&url, &entries, &mut std::io::stdout()).await?;
    println!("{}", oratio::eval::summary(&report));
    if let Some(platform) = platform {
        platform.stop().await?;
    }
    let shortfalls = report.total.shortfalls();
    if !shortfalls.is_empty() {
        bail!("the corpus falls short: {}", shortfalls.join("; "));
    }
    Ok(())
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
