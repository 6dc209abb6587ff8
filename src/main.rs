//! Entry point: parse flags, load settings, start the server. Wiring only.

use std::collections::HashMap;

use agent_server::app::Application;
use agent_server::ops::reload::Reloader;
use agent_server::settings::{Cli, Settings, USAGE};

#[actix_web::main]
async fn main() {
    agent_server::ops::logs::init();
    let cli = match Cli::parse(std::env::args().skip(1)) {
        Ok(c) => c,
        Err(e) => fail(&e.to_string(), 2),
    };
    if cli.help {
        print!("{USAGE}");
        return;
    }
    if cli.version {
        println!(
            "agent-server {} (OpenHands Agent Server API 1.24.0)",
            env!("CARGO_PKG_VERSION")
        );
        return;
    }
    for flag in &cli.ignored {
        log::warn!("{flag} is a flag of the Python server; ignored");
    }
    let env: HashMap<String, String> = std::env::vars().collect();
    let reloader = Reloader::new(cli.clone());
    let settings = match Settings::load(&cli, &env) {
        Ok(s) => s,
        Err(e) => fail(&format!("configuration error: {e}"), 2),
    };
    let host = settings.host.clone();
    let app = match Application::build(settings).await {
        Ok(a) => a,
        Err(e) => fail(&e.to_string(), 1),
    };
    println!("Starting OpenHands Agent Server on {host}:{}", app.port());
    println!("API docs at http://{host}:{}/docs", app.port());
    if let Err(e) = app.run_until_signalled(reloader).await {
        fail(&format!("server error: {e}"), 1);
    }
}

fn fail(msg: &str, code: i32) -> ! {
    eprintln!("agent-server: {msg}");
    std::process::exit(code)
}
