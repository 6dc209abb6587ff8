//! An events-socket subscriber for the soak: connects to
//! `/sockets/events/{id}` (optionally replaying everything), records the id
//! of every persisted event in arrival order, answers pings, resumes with
//! `after_seq` when the server drops it for being slow (close code 4008),
//! and reports each finished run to the conversation's driver. It checks
//! nothing itself: the soak compares its list with the REST log.

use std::net::SocketAddr;
use std::time::Duration;

use awc::ws::{Frame, Message};
use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use serde_json::Value;
use tokio::sync::watch;

/// A socket slower than this to connect counts as a failure.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// After the expected count is reached, frames are still read for this
/// long so that a repeated event would be seen.
const GRACE: Duration = Duration::from_millis(300);
/// Silence after which a subscriber that still misses events gives up.
const GIVE_UP: Duration = Duration::from_secs(15);

/// What one subscriber saw.
#[derive(Debug, Default)]
pub struct Seen {
    /// Conversation id.
    pub conversation: String,
    /// Ids of persisted events, in arrival order.
    pub ids: Vec<String>,
    /// Resumptions after a 4008 close.
    pub resumes: u32,
    /// Unexpected disconnections (each followed by a resume).
    pub drops: Vec<String>,
    /// Frames that were not JSON events.
    pub junk: u32,
}

#[derive(Deserialize)]
struct FrameView {
    id: Option<String>,
    kind: Option<String>,
    key: Option<String>,
    value: Option<Value>,
}

/// Follows one conversation until `expect` names a count that was reached
/// (or silence shows it never will be). The socket asks for every
/// persisted event first (`resend_mode=all`), so that a late subscriber
/// sees the whole log too and `after_seq` is its own count; `runs` (the
/// driver's socket) counts runs that reached a final status.
pub async fn follow(
    addr: SocketAddr,
    conversation: String,
    runs: Option<watch::Sender<u64>>,
    mut expect: watch::Receiver<Option<usize>>,
) -> Seen {
    let mut seen = Seen {
        conversation,
        ..Default::default()
    };
    let mut query = "?resend_mode=all".to_string();
    let mut attempts = 0;
    'connect: loop {
        attempts += 1;
        if attempts > 50 {
            seen.drops
                .push("gave up after 50 connection attempts".into());
            return seen;
        }
        let url = format!("ws://{addr}/sockets/events/{}{query}", seen.conversation);
        let connect = awc::Client::new()
            .ws(url)
            .max_frame_size(64 << 20)
            .connect();
        let mut framed = match tokio::time::timeout(CONNECT_TIMEOUT, connect).await {
            Ok(Ok((_, framed))) => framed,
            Ok(Err(e)) => {
                seen.drops.push(format!("connect failed: {e}"));
                tokio::time::sleep(Duration::from_millis(200)).await;
                query = format!("?after_seq={}", seen.ids.len());
                continue;
            }
            Err(_) => {
                seen.drops.push("connect timed out".into());
                query = format!("?after_seq={}", seen.ids.len());
                continue;
            }
        };
        let mut reached_at: Option<tokio::time::Instant> = None;
        let mut last_frame = tokio::time::Instant::now();
        loop {
            let target = *expect.borrow();
            if let Some(n) = target {
                if seen.ids.len() >= n {
                    let at = *reached_at.get_or_insert_with(tokio::time::Instant::now);
                    if at.elapsed() >= GRACE {
                        let _ = framed.close().await;
                        return seen;
                    }
                } else if last_frame.elapsed() >= GIVE_UP {
                    let _ = framed.close().await;
                    return seen;
                }
            }
            let next = tokio::select! {
                f = framed.next() => Some(f),
                _ = expect.changed() => None,
                _ = tokio::time::sleep(Duration::from_millis(100)) => None,
            };
            let Some(frame) = next else { continue };
            last_frame = tokio::time::Instant::now();
            match frame {
                Some(Ok(Frame::Text(bytes))) => {
                    let Ok(v) = serde_json::from_slice::<FrameView>(&bytes) else {
                        seen.junk += 1;
                        continue;
                    };
                    if v.key.as_deref() == Some("full_state") {
                        continue;
                    }
                    if let (
                        Some(tx),
                        Some("ConversationStateUpdateEvent"),
                        Some("execution_status"),
                    ) = (&runs, v.kind.as_deref(), v.key.as_deref())
                        && matches!(
                            v.value.as_ref().and_then(Value::as_str),
                            Some("finished" | "error" | "stuck" | "paused")
                        )
                    {
                        tx.send_modify(|n| *n += 1);
                    }
                    match v.id {
                        Some(id) => seen.ids.push(id),
                        None => seen.junk += 1,
                    }
                }
                Some(Ok(Frame::Ping(p))) => {
                    let _ = framed.send(Message::Pong(p)).await;
                }
                Some(Ok(Frame::Close(reason))) => {
                    let code = reason.as_ref().map(|r| u16::from(r.code));
                    let text = reason.and_then(|r| r.description).unwrap_or_default();
                    if code == Some(4008) {
                        seen.resumes += 1;
                        let after: Option<usize> =
                            text.rsplit('=').next().and_then(|n| n.trim().parse().ok());
                        if after != Some(seen.ids.len()) {
                            seen.drops.push(format!(
                                "4008 named after_seq {after:?} but {} events had arrived",
                                seen.ids.len()
                            ));
                        }
                    } else {
                        seen.drops
                            .push(format!("closed by the server: {code:?} {text}"));
                    }
                    query = format!("?after_seq={}", seen.ids.len());
                    continue 'connect;
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => {
                    seen.drops.push(format!("protocol error: {e}"));
                    query = format!("?after_seq={}", seen.ids.len());
                    continue 'connect;
                }
                None => {
                    seen.drops
                        .push("connection ended without a close frame".into());
                    query = format!("?after_seq={}", seen.ids.len());
                    continue 'connect;
                }
            }
        }
    }
}
