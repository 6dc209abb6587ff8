//! Builds the application: opens the store, derives the cipher, starts the
//! actors, binds the listener (port 0 in tests) and wires every route. The
//! same [`Application::build`] serves `main` and the integration tests.

use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::Instant;

use actix::prelude::*;
use actix_web::dev::Server;
use actix_web::middleware::{Logger, from_fn};
use actix_web::{App, HttpResponse, HttpServer, web};
use agent_actors::conversation::messages::RecoverRunning;
use agent_actors::conversation::{ConversationConfig, ConversationRegistry, Deps, Durability};
use agent_actors::crypto::Cipher;
use agent_actors::metrics::Counters;
use agent_actors::store::Store;
use agent_actors::webhook::{KeySource, Webhooks};

use crate::auth::{Access, AccessCell};
use crate::error::ApiError;
use crate::settings::Settings;
use crate::state::AppState;

/// A failure to start.
#[derive(Debug)]
pub struct StartError(pub String);

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for StartError {}

/// A built, bound, not yet running server.
pub struct Application {
    port: u16,
    server: Server,
    state: web::Data<AppState>,
}

/// Installs the TLS crypto provider for outgoing HTTPS (once per process).
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

const KEY_CHECK: &str = "secret_key_check";
const KEY_CHECK_PLAIN: &str = "agent-server key check";

fn check_secret_key(store: &Store, cipher: Option<&Cipher>) {
    let Some(cipher) = cipher else {
        log::warn!("OH_SECRET_KEY was not defined: secrets will not be persisted between restarts");
        return;
    };
    match store.meta_get(KEY_CHECK) {
        Ok(Some(token)) => {
            let opened = std::str::from_utf8(&token)
                .ok()
                .and_then(|t| cipher.open_str(KEY_CHECK, t).ok());
            if opened.as_deref() != Some(KEY_CHECK_PLAIN) {
                log::warn!(
                    "OH_SECRET_KEY differs from the key that sealed the stored secrets: \
                     previously stored secrets are unavailable until the old key is restored"
                );
            }
        }
        Ok(None) => {
            if let Ok(token) = cipher.seal_str(KEY_CHECK, KEY_CHECK_PLAIN)
                && let Err(e) = store.meta_put(KEY_CHECK, token.as_bytes())
            {
                log::warn!("could not record the secret key check: {e}");
            }
        }
        Err(e) => log::warn!("could not read the secret key check: {e}"),
    }
}

fn open_store(settings: &Settings) -> Result<Store, StartError> {
    let path = settings.storage_path();
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .map_err(|e| StartError(format!("cannot create {}: {e}", parent.display())))?;
    }
    Store::open(&path, settings.storage.cache_mb.saturating_mul(1 << 20)).map_err(|e| {
        StartError(format!(
            "cannot open the database at {}: {e} (is another server using it? if it is damaged, move it aside)",
            path.display()
        ))
    })
}

impl Application {
    /// Opens storage, starts the actors and binds the listener.
    pub async fn build(settings: Settings) -> Result<Application, StartError> {
        install_crypto_provider();
        let settings = Arc::new(settings);
        let store = open_store(&settings)?;
        let cipher = settings
            .secret_key
            .as_deref()
            .filter(|k| !k.is_empty())
            .map(|k| Arc::new(Cipher::from_secret(k)));
        check_secret_key(&store, cipher.as_deref());
        std::fs::create_dir_all(&settings.conversations_path).map_err(|e| {
            StartError(format!(
                "cannot create {}: {e}",
                settings.conversations_path
            ))
        })?;

        let counters = Arc::new(Counters::default());
        let http = reqwest::Client::builder()
            .connect_timeout(std::time::Duration::from_secs(30))
            .build()
            .map_err(|e| StartError(format!("cannot build the HTTP client: {e}")))?;
        let config = ConversationConfig {
            conversations_path: settings.conversations_path.clone(),
            durability: if settings.storage.durability == "relaxed" {
                Durability::Relaxed
            } else {
                Durability::Sync
            },
            max_subscribers: settings.websocket.max_subscribers,
            subscriber_queue: settings.websocket.queue_frames,
            max_concurrent_runs: settings.max_concurrent_runs,
            terminal_no_change_timeout_secs: settings
                .conversations
                .terminal_no_change_timeout_seconds,
            mcp_tool_timeout_secs: settings.conversations.mcp_tool_timeout_seconds,
            mcp_startup_timeout_secs: settings.conversations.mcp_startup_timeout_seconds,
            fault_injection: settings.testing.fault_injection,
            idle_eviction_secs: settings.conversations.idle_eviction_seconds,
        };
        let access = Arc::new(AccessCell::new(Access::new(
            &settings.session_api_keys,
            &settings.allow_cors_origins,
        )));
        let webhooks = if settings.webhooks.is_empty() {
            Webhooks::none()
        } else {
            let access = access.clone();
            // Read per request, so that a SIGHUP key rotation reaches webhooks.
            let key: KeySource = Arc::new(move || access.get().first_key().map(str::to_string));
            let client = agent_actors::webhook::client().map_err(StartError)?;
            Webhooks::start(&settings.webhooks, client, key, counters.clone())
        };
        let deps = Deps {
            store: store.clone(),
            cipher: cipher.clone(),
            config: Arc::new(config),
            http: http.clone(),
            run_slots: Arc::new(tokio::sync::Semaphore::new(settings.max_concurrent_runs)),
            counters: counters.clone(),
            webhooks: webhooks.clone(),
        };
        // Conversation actors get their own threads, so that agent loops
        // never compete with HTTP workers for a thread.
        let arbiters: Vec<ArbiterHandle> = (0..2).map(|_| Arbiter::new().handle()).collect();
        let registry = {
            let deps = deps.clone();
            Supervisor::start(move |_| ConversationRegistry::new(deps, arbiters))
        };
        match registry.send(RecoverRunning).await {
            Ok(Ok(n)) if n > 0 => {
                log::info!("recovered {n} conversation(s) interrupted by the last shutdown")
            }
            Ok(Ok(_)) => {}
            Ok(Err(e)) => log::error!("recovery of interrupted conversations failed: {e}"),
            Err(e) => {
                return Err(StartError(format!(
                    "conversation registry unavailable: {e}"
                )));
            }
        }

        let bash =
            agent_actors::bash::start(&store, crate::routes::bash::config(&settings, &counters))
                .map_err(|e| StartError(format!("cannot open the bash event log: {e}")))?;

        let listener = TcpListener::bind((settings.host.as_str(), settings.port)).map_err(|e| {
            StartError(format!(
                "cannot bind {}:{}: {e}",
                settings.host, settings.port
            ))
        })?;
        let port = listener
            .local_addr()
            .map_err(|e| StartError(e.to_string()))?
            .port();

        let state = web::Data::new(AppState {
            settings: settings.clone(),
            store,
            cipher,
            conversations: registry,
            bash,
            counters,
            started: Instant::now(),
            ready: Arc::new(AtomicBool::new(false)),
            last_activity: Arc::new(AtomicI64::new(agent_actors::time::now_micros())),
            access,
            http,
            webhooks,
        });
        let workers = settings.http.workers.unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2)
        });
        let app_state = state.clone();
        let json_limit = settings.http.max_json_bytes;
        let server = HttpServer::new(move || {
            App::new()
                .app_data(app_state.clone())
                .app_data(web::PayloadConfig::new(json_limit))
                .configure(configure)
                .default_service(web::to(not_found))
                .wrap(from_fn(crate::auth::require_key))
                .wrap(from_fn(crate::routes::json_errors))
                .wrap(from_fn(crate::body_timeout::body_timeout))
                .wrap(
                    // Path only (%U): keys may travel in query strings.
                    Logger::new("%a \"%{method}xi %U\" %s %b %Dms")
                        .custom_request_replace("method", |r| r.method().to_string())
                        .exclude("/health")
                        .exclude("/alive")
                        .exclude("/metrics"),
                )
                .wrap(from_fn(crate::cors::cors))
                .wrap(from_fn(crate::ops::track_requests))
        })
        .workers(workers)
        // Signals are handled by `ops::lifecycle`, which orders the shutdown.
        .disable_signals()
        .shutdown_timeout(crate::ops::lifecycle::server_shutdown_timeout(
            settings.shutdown_timeout_seconds,
        ))
        .listen(listener)
        .map_err(|e| StartError(format!("cannot listen: {e}")))?
        .run();
        crate::ops::memory::start_trimmer(settings.memory_trim_seconds);
        state.ready.store(true, Ordering::SeqCst);
        Ok(Application {
            port,
            server,
            state,
        })
    }

    /// The bound port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Serves until the server handle stops it (tests), then closes every
    /// conversation and bash command and flushes the store.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let res = self.server.await;
        log::info!("shutting down: closing conversations and flushing the database");
        let limit = std::time::Duration::from_secs(self.state.settings.shutdown_timeout_seconds);
        crate::ops::lifecycle::stop_services(&self.state, limit).await;
        res
    }

    /// Serves until SIGTERM or SIGINT, reloading keys and CORS origins on
    /// SIGHUP, then shuts down in order (see [`crate::ops::lifecycle`]).
    pub async fn run_until_signalled(
        self,
        reloader: crate::ops::reload::Reloader,
    ) -> std::io::Result<()> {
        crate::ops::lifecycle::serve(self.server, self.state, reloader).await
    }

    /// A handle that can stop the server (tests).
    pub fn handle(&self) -> actix_web::dev::ServerHandle {
        self.server.handle()
    }
}

/// Registers every route.
pub fn configure(cfg: &mut web::ServiceConfig) {
    crate::routes::configure(cfg);
    crate::ws::configure(cfg);
    crate::openapi::configure(cfg);
    crate::ops::configure(cfg);
}

/// Header marking a 404 for a path no route serves (as opposed to a
/// route's own "no such resource" 404); the API description test uses it.
pub const UNROUTED_HEADER: &str = "x-agent-server-unrouted";

async fn not_found() -> HttpResponse {
    use actix_web::ResponseError;
    let mut resp = ApiError::not_found().error_response();
    resp.headers_mut().insert(
        actix_web::http::header::HeaderName::from_static(UNROUTED_HEADER),
        actix_web::http::header::HeaderValue::from_static("1"),
    );
    resp
}
