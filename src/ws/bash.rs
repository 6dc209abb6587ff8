//! `WS /sockets/bash-events`: one session actor per socket, subscribed to
//! the bash event log.
//!
//! Order on the wire: with `resend_mode=all`, every stored event in log
//! order (read in chunks, one chunk per write opportunity), then live events
//! — `BashCommand`s and `BashOutput` chunks as commands run — exactly once:
//! the subscription's `head` splits replay from live, and live frames wait
//! in their bounded queue until the replay is done. A socket that falls too
//! far behind is closed with 4008; it never slows a command. Client frames
//! are `ExecuteBashRequest`s that start commands; problems are answered with
//! `BashError` frames and the socket stays open.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use actix::prelude::*;
use actix_web::{HttpRequest, HttpResponse, web};
use actix_web_actors::ws;
use agent_actors::bash::event_log::{BashFrame, end};
use agent_actors::bash::messages::StartCommand;
use agent_actors::bash::model::{ExecuteBashRequest, error_json};
use agent_actors::metrics::{Counters, WsFailure};
use serde_json::Value;
use tokio::sync::mpsc;

use crate::ws::protocol::{Fragments, Joined};

use super::{CLOSE_AUTH_FAILED, CLOSE_TOO_SLOW, CLOSE_TRY_AGAIN, Presented, presented_key};
use crate::extract::Query;
use crate::state::AppState;
use crate::ws::YieldOnce;

/// Events per replay chunk.
const REPLAY_ITEMS: usize = 64;
/// About this many bytes per replay chunk.
const REPLAY_BYTES: usize = 4 << 20;

/// One bash event socket.
pub struct BashSession {
    state: web::Data<AppState>,
    replay_all: bool,
    authed: bool,
    sub_id: Option<u64>,
    end: Arc<AtomicU8>,
    queued: Arc<AtomicUsize>,
    /// Live frames, held back until the replay is done.
    pending_rx: Option<mpsc::Receiver<BashFrame>>,
    /// Next seq to replay and the last one (inclusive).
    replay: Option<(u64, u64)>,
    last_seq: u64,
    last_heard: Instant,
    /// A message the client is sending in fragments.
    fragments: Fragments,
}

impl BashSession {
    fn close(&mut self, ctx: &mut ws::WebsocketContext<Self>, code: u16, reason: &str) {
        ctx.close(Some(ws::CloseReason {
            code: ws::CloseCode::Other(code),
            description: Some(reason.to_string()),
        }));
        ctx.stop();
    }

    fn subscribe(&mut self, ctx: &mut ws::WebsocketContext<Self>) {
        let queue = self.state.settings.websocket.queue_frames.max(1);
        let (tx, rx) = mpsc::channel::<BashFrame>(queue);
        let Some(sub) = self.state.bash.log.subscribe(tx, self.end.clone()) else {
            return self.close(ctx, CLOSE_TRY_AGAIN, "Too many bash event connections");
        };
        self.sub_id = Some(sub.id);
        self.queued = sub.queued;
        self.last_seq = sub.head;
        self.pending_rx = Some(rx);
        if self.replay_all && sub.head > 0 {
            self.replay = Some((0, sub.head));
        }
        self.pump_replay(ctx);
    }

    /// Sends the next replay chunk, then yields so it is written before the
    /// following one is read; at the end, starts the live stream.
    fn pump_replay(&mut self, ctx: &mut ws::WebsocketContext<Self>) {
        let Some((from, head)) = self.replay else {
            return self.go_live(ctx);
        };
        match self
            .state
            .bash
            .log
            .read_range(from, head, REPLAY_ITEMS, REPLAY_BYTES)
        {
            Ok((frames, next)) => {
                for f in frames {
                    ctx.text(f.text.to_string());
                }
                match next {
                    Some(n) => self.replay = Some((n, head)),
                    None => self.replay = None,
                }
            }
            Err(e) => {
                log::warn!("bash socket: replay failed: {e}");
                self.state.counters.ws_failed(WsFailure::ReplayFailed);
                self.replay = None;
            }
        }
        ctx.spawn(
            YieldOnce::default()
                .into_actor(self)
                .map(|_, act, ctx| act.pump_replay(ctx)),
        );
    }

    fn go_live(&mut self, ctx: &mut ws::WebsocketContext<Self>) {
        if let Some(rx) = self.pending_rx.take() {
            let stream = futures_util::stream::unfold(rx, |mut rx| async move {
                rx.recv().await.map(|f| (f, rx))
            });
            ctx.add_stream(stream);
        }
    }

    fn unsubscribe(&mut self) {
        if let Some(id) = self.sub_id.take() {
            self.state.bash.log.unsubscribe(id);
        }
    }

    fn send_error(ctx: &mut ws::WebsocketContext<Self>, code: &str, detail: &str) {
        ctx.text(error_json(code, detail));
    }

    fn on_client_text(&mut self, text: &str, ctx: &mut ws::WebsocketContext<Self>) {
        let parsed: Result<Value, _> = serde_json::from_str(text);
        if !self.authed {
            let key = parsed
                .as_ref()
                .ok()
                .filter(|v| v.get("type").and_then(Value::as_str) == Some("auth"))
                .and_then(|v| v.get("session_api_key"))
                .and_then(Value::as_str)
                .map(str::to_string);
            if key.is_some_and(|k| self.state.access.get().accepts(&k)) {
                self.authed = true;
                self.subscribe(ctx);
            } else {
                self.close(ctx, CLOSE_AUTH_FAILED, "Authentication failed");
            }
            return;
        }
        let value = match parsed {
            Ok(v) => v,
            Err(e) => {
                return Self::send_error(ctx, "ValidationError", &format!("Invalid JSON: {e}"));
            }
        };
        // As in the reference, every frame after authentication (a repeated
        // auth frame included) must be an ExecuteBashRequest.
        let request = match ExecuteBashRequest::from_value(&value) {
            Ok(r) => r,
            Err(e) => {
                let at = if e.loc.is_empty() {
                    String::new()
                } else {
                    format!("{}\n  ", e.loc.join("."))
                };
                let detail = format!("1 validation error for ExecuteBashRequest\n{at}{}", e.msg);
                return Self::send_error(ctx, "ValidationError", &detail);
            }
        };
        self.state.touch();
        ctx.spawn(
            self.state
                .bash
                .registry
                .send(StartCommand {
                    request,
                    wait: false,
                })
                .into_actor(self)
                .map(|res, _act, ctx| {
                    let err = match res {
                        Ok(Ok(_)) => return,
                        Ok(Err(e)) => e.to_string(),
                        Err(e) => e.to_string(),
                    };
                    Self::send_error(ctx, "ServerError", &err);
                }),
        );
    }
}

impl Actor for BashSession {
    type Context = ws::WebsocketContext<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        Counters::add(&self.state.counters.ws_bash_subscribers, 1);
        let ws_cfg = &self.state.settings.websocket;
        let hb = Duration::from_secs(ws_cfg.heartbeat_seconds.max(1));
        let timeout = Duration::from_secs(ws_cfg.client_timeout_seconds);
        ctx.run_interval(hb, move |act, ctx| {
            if act.last_heard.elapsed() > timeout {
                log::info!("bash socket: no answer for {timeout:?}; closing");
                ctx.stop();
                return;
            }
            ctx.ping(b"");
        });
        if self.authed {
            self.subscribe(ctx);
        } else {
            let wait = Duration::from_secs(ws_cfg.auth_timeout_seconds);
            ctx.run_later(wait, |act, ctx| {
                if !act.authed {
                    act.close(ctx, CLOSE_AUTH_FAILED, "Authentication failed");
                }
            });
        }
    }

    fn stopped(&mut self, _ctx: &mut Self::Context) {
        Counters::sub(&self.state.counters.ws_bash_subscribers, 1);
        self.unsubscribe();
    }
}

impl StreamHandler<BashFrame> for BashSession {
    fn handle(&mut self, frame: BashFrame, ctx: &mut Self::Context) {
        let _ = self
            .queued
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |q| {
                Some(q.saturating_sub(frame.text.len()))
            });
        if frame.seq <= self.last_seq {
            return;
        }
        self.last_seq = frame.seq;
        ctx.text(frame.text.to_string());
    }

    fn finished(&mut self, ctx: &mut Self::Context) {
        self.sub_id = None;
        match self.end.load(Ordering::SeqCst) {
            end::OVERFLOW => {
                log::warn!("bash socket: subscriber too slow; closing with {CLOSE_TOO_SLOW}");
                self.state.counters.ws_failed(WsFailure::TooSlow);
                self.close(ctx, CLOSE_TOO_SLOW, "Subscriber too slow")
            }
            end::SHUTDOWN => {
                ctx.close(Some(ws::CloseReason {
                    code: ws::CloseCode::Away,
                    description: Some("Server shutting down".into()),
                }));
                ctx.stop();
            }
            _ => {
                log::warn!("bash socket: the bash event log ended the subscription");
                self.state.counters.ws_failed(WsFailure::SubscribeFailed);
                self.close(ctx, 1011, "Bash events unavailable")
            }
        }
    }
}

impl StreamHandler<Result<ws::Message, ws::ProtocolError>> for BashSession {
    fn handle(&mut self, msg: Result<ws::Message, ws::ProtocolError>, ctx: &mut Self::Context) {
        self.last_heard = Instant::now();
        match msg {
            Ok(ws::Message::Ping(p)) => ctx.pong(&p),
            Ok(ws::Message::Pong(_)) => {}
            Ok(ws::Message::Text(t)) => self.on_client_text(&t, ctx),
            Ok(ws::Message::Binary(_)) => {
                Self::send_error(ctx, "ValidationError", "Binary frames are not supported")
            }
            Ok(ws::Message::Close(reason)) => {
                ctx.close(reason);
                ctx.stop();
            }
            Ok(ws::Message::Continuation(item)) => match self.fragments.push(item) {
                Ok(None) => {}
                Ok(Some(Joined::Text(t))) => self.on_client_text(&t, ctx),
                Ok(Some(Joined::Binary)) => {
                    Self::send_error(ctx, "ValidationError", "Binary frames are not supported")
                }
                Err(reason) => {
                    self.state.counters.ws_failed(WsFailure::ProtocolError);
                    ctx.close(Some(reason));
                    ctx.stop();
                }
            },
            Ok(ws::Message::Nop) => {}
            Err(e) => {
                log::warn!("bash socket: protocol error: {e}");
                self.state.counters.ws_failed(WsFailure::ProtocolError);
                let limit = self.state.settings.websocket.max_frame_bytes;
                ctx.close(Some(super::protocol::close_reason(&e, limit)));
                ctx.stop();
            }
        }
    }

    fn finished(&mut self, ctx: &mut Self::Context) {
        ctx.stop();
    }
}

/// Opens the bash event socket (see the module docs for the protocol).
pub async fn connect(
    req: HttpRequest,
    stream: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, actix_web::Error> {
    let q = Query::from_request(&req);
    let replay_all = match (q.get("resend_mode"), q.get("resend_all")) {
        (Some("all"), _) => true,
        (Some(_), _) => return Ok(HttpResponse::Forbidden().finish()),
        (None, None) => false,
        (None, Some(v)) => match v.to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" | "t" | "y" => true,
            "false" | "0" | "no" | "off" | "f" | "n" => false,
            _ => return Ok(HttpResponse::Forbidden().finish()),
        },
    };
    let authed = match presented_key(&req, &q, &state) {
        Presented::Open | Presented::Valid => true,
        Presented::Invalid => return Ok(HttpResponse::Forbidden().finish()),
        Presented::FirstFrame => false,
    };
    let session = BashSession {
        fragments: Fragments::new(state.settings.websocket.max_frame_bytes),
        state: state.clone(),
        replay_all,
        authed,
        sub_id: None,
        end: Arc::new(AtomicU8::new(end::NONE)),
        queued: Arc::new(AtomicUsize::new(0)),
        pending_rx: None,
        replay: None,
        last_seq: 0,
        last_heard: Instant::now(),
    };
    let limit = state.settings.websocket.max_frame_bytes;
    let guarded = super::protocol::FrameGuard::new(stream, limit);
    ws::WsResponseBuilder::new(session, &req, guarded)
        .frame_size(limit)
        .start()
}
