//! `WS /sockets/events/{conversation_id}`: one session actor per socket,
//! subscribed to its conversation actor.
//!
//! Order on the wire: the `full_state` snapshot first, then the requested
//! replay read from the store (in chunks, one chunk per write opportunity, so
//! a slow socket holds back the replay instead of buffering it), then live
//! events from the subscription queue. The subscription's `head` splits
//! replay from live, so nothing is missed or repeated; each persisted frame
//! carries its seq, and the session tracks the last one sent. If the
//! conversation actor crashes, the session re-subscribes after that seq; if
//! the session falls too far behind, it is closed with 4008 and the client
//! resumes with `after_seq`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{Duration, Instant};

use actix::prelude::*;
use actix_web::{HttpRequest, HttpResponse, web};
use actix_web_actors::ws;
use agent_actors::conversation::ActorError;
use agent_actors::conversation::ConversationActor;
use agent_actors::conversation::messages::{
    Lookup, SendMessage, Subscribe, Subscribed, Unsubscribe,
};
use agent_actors::conversation::publisher::{Frame, end};
use agent_actors::ids::Uuid;
use agent_actors::metrics::{Counters, WsFailure};
use agent_actors::model::conversation::{SendMessageRequest, parse_content_list};
use serde_json::{Value, json};

use super::{
    CLOSE_AUTH_FAILED, CLOSE_NOT_FOUND, CLOSE_TOO_SLOW, CLOSE_TRY_AGAIN, Presented, presented_key,
};
use crate::extract::Query;
use crate::state::AppState;
use crate::ws::YieldOnce;
use crate::ws::protocol::{Fragments, Joined};

const REPLAY_CHUNK: usize = 64;

/// What to replay before going live.
#[derive(Debug, Clone, PartialEq)]
enum Resend {
    /// Nothing.
    None,
    /// Every persisted event after this seq (0: all).
    After(u64),
    /// Events with a time stamp at or after this (naive local) time.
    Since(String),
}

/// One event socket.
pub struct EventsSession {
    state: web::Data<AppState>,
    conversation: Uuid,
    resend: Resend,
    authed: bool,
    addr: Option<Addr<ConversationActor>>,
    sub_id: Option<u64>,
    end: Arc<AtomicU8>,
    /// Seq of the last persisted event sent.
    last_seq: u64,
    /// `last_seq` as told to the conversation, whose replies to requests
    /// wait until the events they caused were written here.
    sent: tokio::sync::watch::Sender<u64>,
    /// Replay position and end (inclusive).
    replay: Option<(u64, u64)>,
    /// The subscription's queue, read only once the replay is done.
    live: Option<tokio::sync::mpsc::Receiver<Frame>>,
    last_heard: Instant,
    resubscribes: u32,
    /// Consecutive failed subscription attempts.
    retries: u32,
    /// A message the client is sending in fragments.
    fragments: Fragments,
}

impl EventsSession {
    fn close(&mut self, ctx: &mut ws::WebsocketContext<Self>, code: u16, reason: &str) {
        ctx.close(Some(ws::CloseReason {
            code: ws::CloseCode::Other(code),
            description: Some(reason.to_string()),
        }));
        ctx.stop();
    }

    /// Finds the conversation and subscribes (again, after a crash: `dead`).
    fn subscribe(&mut self, ctx: &mut ws::WebsocketContext<Self>, dead: bool) {
        let registry = self.state.conversations.clone();
        let id = self.conversation;
        let queue = self.state.settings.websocket.queue_frames;
        let (tx, rx) = tokio::sync::mpsc::channel::<Frame>(queue);
        self.end = Arc::new(AtomicU8::new(end::NONE));
        let end_flag = self.end.clone();
        let sent_watch = self.sent.subscribe();
        let fut = async move {
            let addr = registry
                .send(Lookup { id, dead })
                .await
                .map_err(ActorError::from)??
                .ok_or(ActorError::NotFound)?;
            let sub = addr
                .send(Subscribe {
                    tx,
                    end: end_flag,
                    sent: sent_watch,
                })
                .await
                .map_err(ActorError::from)??;
            Ok::<(Addr<ConversationActor>, Subscribed), ActorError>((addr, sub))
        };
        ctx.wait(fut.into_actor(self).map(move |res, act, ctx| match res {
            Ok((addr, sub)) => {
                act.retries = 0;
                act.addr = Some(addr);
                act.sub_id = Some(sub.id);
                let first = act.resubscribes == 0;
                if first {
                    ctx.text(sub.snapshot);
                }
                let from = match (&act.resend, first) {
                    (_, false) => Some(act.last_seq + 1),
                    (Resend::None, true) => None,
                    (Resend::After(n), true) => Some(n + 1),
                    (Resend::Since(_), true) => Some(1),
                };
                act.last_seq = act.last_seq.max(match from {
                    Some(f) => f.saturating_sub(1),
                    None => sub.head,
                });
                act.replay = from.filter(|f| *f <= sub.head).map(|f| (f, sub.head));
                if act.replay.is_none() {
                    act.last_seq = act.last_seq.max(sub.head);
                }
                // Live frames wait in their bounded queue until the replay
                // is done: read earlier, a live frame would overtake the
                // replay chunks still to come (`pump_replay` goes live).
                act.live = Some(rx);
                act.pump_replay(ctx);
            }
            Err(ActorError::NotFound) => act.close(ctx, CLOSE_NOT_FOUND, "Conversation not found"),
            Err(ActorError::TooManySubscribers) => act.close(
                ctx,
                CLOSE_TRY_AGAIN,
                "Too many connections for this conversation",
            ),
            Err(e @ (ActorError::Unavailable(_) | ActorError::Evicted)) if act.retries < 20 => {
                // The conversation's actor just died and the registry may
                // still hold its old address for a moment: try again.
                act.retries += 1;
                log::debug!("socket for {id}: subscription retry {} ({e})", act.retries);
                let wait = Duration::from_millis(25 * u64::from(act.retries));
                ctx.run_later(wait, |act, ctx| act.subscribe(ctx, true));
            }
            Err(e) => {
                log::warn!("socket for conversation {id}: subscription failed: {e}");
                act.state.counters.ws_failed(WsFailure::SubscribeFailed);
                ctx.close(Some(ws::CloseReason {
                    code: ws::CloseCode::Error,
                    description: Some("Conversation unavailable".into()),
                }));
                ctx.stop();
            }
        }));
    }

    /// Sends the next replay chunk, then yields so it is written before the
    /// following one is read.
    fn pump_replay(&mut self, ctx: &mut ws::WebsocketContext<Self>) {
        let Some((from, head)) = self.replay else {
            return self.go_live(ctx);
        };
        let store = &self.state.store;
        let mut next = from;
        let mut sent = 0;
        for item in store.events_from(&self.conversation, from, false) {
            let e = match item {
                Ok(e) => e,
                Err(err) => {
                    log::warn!(
                        "conversation {}: damaged event skipped in replay: {err}",
                        self.conversation
                    );
                    continue;
                }
            };
            if e.seq > head {
                next = head + 1;
                break;
            }
            next = e.seq + 1;
            let keep = match &self.resend {
                Resend::Since(ts) => e.timestamp() >= ts.as_str(),
                _ => true,
            };
            if keep {
                ctx.text(e.json().to_string());
                sent += 1;
            }
            self.last_seq = e.seq;
            if sent >= REPLAY_CHUNK {
                break;
            }
        }
        if next > head || sent < REPLAY_CHUNK {
            self.last_seq = self
                .last_seq
                .max(head.min(next.saturating_sub(1)).max(self.last_seq));
            if next > head || next == from {
                self.replay = None;
                self.last_seq = self.last_seq.max(head);
                return self.go_live(ctx);
            }
        }
        self.replay = Some((next, head));
        ctx.spawn(
            YieldOnce::default()
                .into_actor(self)
                .map(|_, act, ctx| act.pump_replay(ctx)),
        );
    }

    /// Starts reading the subscription's queue (after the replay).
    fn go_live(&mut self, ctx: &mut ws::WebsocketContext<Self>) {
        self.sent.send_replace(self.last_seq);
        if let Some(rx) = self.live.take() {
            let stream = futures_util::stream::unfold(rx, |mut rx| async move {
                rx.recv().await.map(|f| (f, rx))
            });
            ctx.add_stream(stream);
        }
    }

    fn unsubscribe(&mut self) {
        if let (Some(addr), Some(id)) = (self.addr.take(), self.sub_id.take()) {
            addr.do_send(Unsubscribe { id });
        }
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
                self.subscribe(ctx, false);
            } else {
                self.close(ctx, CLOSE_AUTH_FAILED, "Authentication failed");
            }
            return;
        }
        let value = match parsed {
            Ok(v) => v,
            Err(e) => {
                return self.send_error(ctx, "ValidationError", &format!("Invalid JSON: {e}"));
            }
        };
        if value.get("type").and_then(Value::as_str) == Some("auth") {
            return;
        }
        if self.state.settings.testing.fault_injection
            && value.get("type").and_then(Value::as_str) == Some("_test_fault")
        {
            // Test-only: the session dies without a close frame, as a
            // crashed session would; the client resumes with after_seq.
            log::warn!("socket for {}: injected fault", self.conversation);
            ctx.stop();
            return;
        }
        let message = match parse_socket_message(&value) {
            Ok(m) => m,
            Err(detail) => return self.send_error(ctx, "ValidationError", &detail),
        };
        let Some(addr) = self.addr.clone() else {
            return self.send_error(ctx, "NotReady", "The subscription is not established yet");
        };
        ctx.spawn(
            addr.send(SendMessage { message })
                .into_actor(self)
                .map(|res, act, ctx| {
                    let err = match res {
                        Ok(Ok(())) => return,
                        Ok(Err(e)) => e.to_string(),
                        Err(e) => e.to_string(),
                    };
                    act.send_error(ctx, "ValueError", &err);
                }),
        );
    }

    fn send_error(&mut self, ctx: &mut ws::WebsocketContext<Self>, code: &str, detail: &str) {
        ctx.text(
            json!({
                "id": Uuid::new_v4().hyphenated(),
                "timestamp": agent_actors::time::format_local(agent_actors::time::now_micros()),
                "source": "environment",
                "code": code,
                "detail": detail,
                "kind": "ServerErrorEvent",
            })
            .to_string(),
        );
    }
}

/// A client message frame: an SDK `Message` (`content` may be a string);
/// it is sent with `run = true`.
fn parse_socket_message(v: &Value) -> Result<SendMessageRequest, String> {
    let obj = v
        .as_object()
        .ok_or("1 validation error for Message: input should be an object")?;
    let role = match obj.get("role") {
        Some(Value::String(r)) => r.clone(),
        None => return Err("1 validation error for Message\nrole\n  Field required".into()),
        Some(_) => {
            return Err(
                "1 validation error for Message\nrole\n  Input should be a valid string".into(),
            );
        }
    };
    if role != "user" {
        return Err("Only user messages are allowed to be sent to the agent.".into());
    }
    let content =
        parse_content_list(obj.get("content"), &["content".to_string()]).map_err(|e| {
            format!(
                "1 validation error for Message\n{}\n  {}",
                e.loc.join("."),
                e.msg
            )
        })?;
    Ok(SendMessageRequest {
        role,
        content,
        run: true,
    })
}

impl Actor for EventsSession {
    type Context = ws::WebsocketContext<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        Counters::add(&self.state.counters.ws_subscribers, 1);
        let ws_cfg = &self.state.settings.websocket;
        let hb = Duration::from_secs(ws_cfg.heartbeat_seconds);
        let timeout = Duration::from_secs(ws_cfg.client_timeout_seconds);
        ctx.run_interval(hb, move |act, ctx| {
            if act.last_heard.elapsed() > timeout {
                log::info!(
                    "socket for {}: no answer for {timeout:?}; closing",
                    act.conversation
                );
                ctx.stop();
                return;
            }
            ctx.ping(b"");
        });
        if self.authed {
            self.subscribe(ctx, false);
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
        Counters::sub(&self.state.counters.ws_subscribers, 1);
        self.unsubscribe();
    }
}

impl StreamHandler<Frame> for EventsSession {
    fn handle(&mut self, frame: Frame, ctx: &mut Self::Context) {
        if let Some(seq) = frame.seq {
            if seq <= self.last_seq {
                return;
            }
            self.last_seq = seq;
        }
        ctx.text(frame.text.to_string());
        if frame.seq.is_some() {
            self.sent.send_replace(self.last_seq);
        }
    }

    fn finished(&mut self, ctx: &mut Self::Context) {
        log::debug!(
            "socket for {}: subscription ended (reason {}) after seq {}",
            self.conversation,
            self.end.load(Ordering::SeqCst),
            self.last_seq
        );
        match self.end.load(Ordering::SeqCst) {
            end::OVERFLOW => {
                let reason = format!(
                    "Subscriber too slow; reconnect with after_seq={}",
                    self.last_seq
                );
                log::warn!(
                    "socket for conversation {}: subscriber too slow; closing with {CLOSE_TOO_SLOW} after seq {}",
                    self.conversation,
                    self.last_seq
                );
                self.state.counters.ws_failed(WsFailure::TooSlow);
                self.sub_id = None;
                self.close(ctx, CLOSE_TOO_SLOW, &reason);
            }
            end::DELETED => {
                self.sub_id = None;
                self.close(ctx, CLOSE_NOT_FOUND, "Conversation deleted");
            }
            end::SHUTDOWN => {
                self.sub_id = None;
                ctx.close(Some(ws::CloseReason {
                    code: ws::CloseCode::Away,
                    description: Some("Server shutting down".into()),
                }));
                ctx.stop();
            }
            _ => {
                // The conversation actor went away without saying why (it
                // crashed, or was evicted): subscribe again after the last
                // event sent, so nothing is lost or repeated.
                self.sub_id = None;
                self.addr = None;
                self.resubscribes += 1;
                if self.resubscribes > 100 {
                    log::warn!(
                        "socket for conversation {}: the conversation keeps failing; closing",
                        self.conversation
                    );
                    self.state.counters.ws_failed(WsFailure::ActorFailing);
                    self.close(ctx, 1011, "Conversation keeps failing");
                    return;
                }
                self.subscribe(ctx, true);
            }
        }
    }
}

impl StreamHandler<Result<ws::Message, ws::ProtocolError>> for EventsSession {
    fn handle(&mut self, msg: Result<ws::Message, ws::ProtocolError>, ctx: &mut Self::Context) {
        self.last_heard = Instant::now();
        match msg {
            Ok(ws::Message::Ping(p)) => ctx.pong(&p),
            Ok(ws::Message::Pong(_)) => {}
            Ok(ws::Message::Text(t)) => self.on_client_text(&t, ctx),
            Ok(ws::Message::Binary(_)) => {
                self.send_error(ctx, "ValidationError", "Binary frames are not supported")
            }
            Ok(ws::Message::Close(reason)) => {
                ctx.close(reason);
                ctx.stop();
            }
            Ok(ws::Message::Continuation(item)) => match self.fragments.push(item) {
                Ok(None) => {}
                Ok(Some(Joined::Text(t))) => self.on_client_text(&t, ctx),
                Ok(Some(Joined::Binary)) => {
                    self.send_error(ctx, "ValidationError", "Binary frames are not supported")
                }
                Err(reason) => {
                    self.state.counters.ws_failed(WsFailure::ProtocolError);
                    ctx.close(Some(reason));
                    ctx.stop();
                }
            },
            Ok(ws::Message::Nop) => {}
            Err(e) => {
                log::warn!(
                    "socket for conversation {}: protocol error: {e}",
                    self.conversation
                );
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

fn forbidden() -> HttpResponse {
    HttpResponse::Forbidden().finish()
}

/// Opens an event socket (see the module docs for the protocol).
pub async fn connect(
    req: HttpRequest,
    path: web::Path<String>,
    stream: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, actix_web::Error> {
    let q = Query::from_request(&req);
    let Some(conversation) = Uuid::parse(&path) else {
        return Ok(forbidden());
    };
    let resend_mode = q.get("resend_mode");
    let resend = match resend_mode {
        Some("all") => Resend::After(0),
        Some("since") => match q.get("after_timestamp") {
            Some(raw) => match agent_actors::time::ParsedDateTime::parse(raw) {
                Some(t) => Resend::Since(t.to_local_string()),
                None => return Ok(forbidden()),
            },
            None => Resend::None,
        },
        Some(_) => return Ok(forbidden()),
        None => match (q.get("after_seq"), q.get("resend_all")) {
            (Some(n), _) => match n.parse::<u64>() {
                Ok(n) => Resend::After(n),
                Err(_) => return Ok(forbidden()),
            },
            (None, Some(v)) if matches!(v.to_ascii_lowercase().as_str(), "true" | "1") => {
                Resend::After(0)
            }
            _ => Resend::None,
        },
    };
    let authed = match presented_key(&req, &q, &state) {
        Presented::Open | Presented::Valid => true,
        Presented::Invalid => return Ok(forbidden()),
        Presented::FirstFrame => false,
    };
    let session = EventsSession {
        state: state.clone(),
        conversation,
        resend,
        authed,
        addr: None,
        sub_id: None,
        end: Arc::new(AtomicU8::new(end::NONE)),
        last_seq: 0,
        sent: tokio::sync::watch::channel(0).0,
        replay: None,
        live: None,
        last_heard: Instant::now(),
        resubscribes: 0,
        retries: 0,
        fragments: Fragments::new(state.settings.websocket.max_frame_bytes),
    };
    let limit = state.settings.websocket.max_frame_bytes;
    let guarded = super::protocol::FrameGuard::new(stream, limit);
    ws::WsResponseBuilder::new(session, &req, guarded)
        .frame_size(limit)
        .start()
}
