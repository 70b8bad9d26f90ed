//! `GET /v1/realtime?intent=transcription`: OpenAI's Realtime API for
//! transcription sessions, over a WebSocket. The client streams PCM16 audio
//! (`input_audio_buffer.append`); server VAD or the client's commits cut it
//! into utterances; each is transcribed on the workers, in order, and its
//! text comes back as `conversation.item.input_audio_transcription.delta`
//! and `.completed`, the latter with Sori's figures for that utterance.
//! Sori's own client event `sori.session.save` keeps what the session has
//! transcribed as one transcription in the history (`sori.session.saved`).

mod config;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use axum::extract::rejection::QueryRejection;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap};
use axum::response::Response;
use base64::Engine as _;
use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};

use self::config::SessionConfig;
use super::openai::openai_error;
use super::AppState;
use crate::engine::{ProgressSink, TranscribeOptions};
use crate::error::AppError;
use crate::live::input::{InputAudio, InputError, InputEvent, Utterance};
use crate::live::transcript::{SessionTranscript, MAX_NAME_CHARS};
use crate::live::{self, SessionTotals};
use crate::models::OfferedModel;
use crate::telemetry::metrics;
use crate::vad::turns::TurnDetector;

/// The largest client event taken, bytes: an append of about a minute of
/// 24 kHz audio (OpenAI's clients send 20-100 ms at a time).
const MAX_EVENT_BYTES: usize = 4 << 20;
/// Server events waiting for a slow client; the deltas of a client further
/// behind are dropped (its completed events are not).
const OUTGOING_EVENTS: usize = 256;
/// The WebSocket subprotocol OpenAI's browser clients ask for.
const SUBPROTOCOL: &str = "realtime";

/// The connection's query: OpenAI's clients add `intent=transcription` for transcription sessions.
#[derive(Debug, Deserialize)]
pub struct ConnectQuery {
    intent: Option<String>,
}

/// Opens a live session: checks the intent, the page's origin and a free
/// session slot before the upgrade, so a refusal is a plain HTTP answer.
pub async fn connect(
    State(state): State<AppState>,
    query: Result<Query<ConnectQuery>, QueryRejection>,
    headers: HeaderMap,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, AppError> {
    let upgrade = upgrade.map_err(|e| {
        AppError::bad_request(
            "websocket_required",
            format!("/v1/realtime is a WebSocket endpoint; connect with a WebSocket client ({e})"),
        )
    })?;
    let Query(query) = query.map_err(|e| AppError::bad_request("invalid_query", e.body_text()))?;
    if query.intent.as_deref() != Some("transcription") {
        return Err(AppError::bad_request(
            "unsupported_intent",
            "Sori's realtime API runs transcription sessions: connect to /v1/realtime?intent=transcription",
        ));
    }
    if let Some(origin) = headers.get(header::ORIGIN) {
        let origin = origin.to_str().unwrap_or("(not text)");
        if !super::guards::origin_allowed(origin, &headers, &state.limits.allowed_origins) {
            return Err(AppError::ForbiddenOrigin(origin.to_string()));
        }
    }
    if state.shutdown.is_cancelled() {
        return Err(AppError::ShuttingDown);
    }
    let slot = state
        .live
        .open_slot()
        .ok_or(AppError::TooManyLiveSessions(state.live.settings.max_sessions))?;
    Ok(upgrade
        .protocols([SUBPROTOCOL])
        .max_message_size(MAX_EVENT_BYTES)
        .max_frame_size(MAX_EVENT_BYTES)
        .on_upgrade(move |socket| run(socket, state, slot)))
}

/// What goes out on the socket.
enum Outgoing {
    Event(Value),
    Close(u16, &'static str),
}

/// Work for the session's transcriber, done in the order it was asked for.
enum Work {
    /// An utterance to transcribe.
    Utterance(Pending),
    /// Keep what was transcribed before it as one transcription.
    Save(SaveRequest),
}

/// A `sori.session.save` event.
struct SaveRequest {
    /// The name the history shows; a default naming the session's start when `None`.
    name: Option<String>,
    /// The client event's id, for an `error` answer.
    event_id: Option<String>,
}

/// An utterance waiting for its transcription.
struct Pending {
    item_id: String,
    utterance: Utterance,
    model: OfferedModel,
    options: TranscribeOptions,
    /// When its audio ended (speech stopped, or the commit): the latency's start.
    ended: Instant,
    /// Its share of the session's pending audio, given back when it is transcribed.
    _pending: OwnedSemaphorePermit,
}

/// Runs one session until the client leaves, goes idle, or the server shuts down.
async fn run(socket: WebSocket, state: AppState, _slot: OwnedSemaphorePermit) {
    let _open = metrics::live_session_opened();
    let (sink, mut incoming) = socket.split();
    let (outgoing, to_send) = mpsc::channel(OUTGOING_EVENTS);
    let writer = tokio::spawn(write(sink, to_send));
    let (queue, queued) = mpsc::unbounded_channel();
    let events = Events(outgoing.clone());
    let transcriber = state
        .work
        .spawn(transcribe_in_order(state.clone(), queued, events.clone()));
    let mut session = Session::new(&state, events.clone(), queue);
    events
        .send(json!({"type": "session.created", "session": session.config.to_json(&session.id)}))
        .await;
    let idle = state.live.settings.idle_timeout;
    // Only events count: a client whose WebSocket library pings by itself is still idle.
    let mut idle_until = tokio::time::Instant::now() + idle;
    let ending = loop {
        let message = tokio::select! {
            message = incoming.next() => message,
            () = tokio::time::sleep_until(idle_until) => break Ending::Finish(1000, "no event for the idle timeout"),
            () = state.shutdown.cancelled() => break Ending::Finish(1001, "the server is shutting down"),
        };
        match message {
            None | Some(Err(_) | Ok(Message::Close(_))) => break Ending::ClientLeft,
            Some(Ok(Message::Text(text))) => {
                idle_until = tokio::time::Instant::now() + idle;
                session.handle(text.as_str()).await;
            }
            Some(Ok(Message::Binary(_))) => {
                idle_until = tokio::time::Instant::now() + idle;
                let error = EventError::invalid("invalid_event", "send events as JSON text messages");
                events.error(error, None).await;
            }
            Some(Ok(_)) => {}
        }
    };
    drop(session);
    match ending {
        // Nobody reads the text of the utterances still waiting.
        Ending::ClientLeft => transcriber.abort(),
        Ending::Finish(code, reason) => {
            let _ = transcriber.await;
            let _ = outgoing.send(Outgoing::Close(code, reason)).await;
        }
    }
    drop((events, outgoing));
    let _ = writer.await;
}

/// Why a session ends.
enum Ending {
    /// The client closed the socket, or it broke.
    ClientLeft,
    /// The server ends it, after the utterances waiting, with this close code and reason.
    Finish(u16, &'static str),
}

/// Sends the session's events as JSON text messages, in order.
async fn write(mut sink: futures_util::stream::SplitSink<WebSocket, Message>, mut events: mpsc::Receiver<Outgoing>) {
    while let Some(next) = events.recv().await {
        let message = match next {
            Outgoing::Event(event) => Message::Text(event.to_string().into()),
            Outgoing::Close(code, reason) => Message::Close(Some(CloseFrame {
                code,
                reason: reason.into(),
            })),
        };
        if sink.send(message).await.is_err() {
            return;
        }
    }
}

/// A refused client event, as OpenAI's `error` event carries it.
#[derive(Debug, Clone)]
pub struct EventError {
    kind: String,
    code: String,
    message: String,
    param: Option<String>,
}

impl EventError {
    /// An `invalid_request_error` with `code`.
    fn invalid(code: &str, message: impl Into<String>) -> Self {
        Self {
            kind: "invalid_request_error".into(),
            code: code.into(),
            message: message.into(),
            param: None,
        }
    }

    /// The same error, naming the field at fault.
    fn with_param(mut self, param: &str) -> Self {
        self.param = Some(param.into());
        self
    }

    fn to_json(&self, event_id: Option<&str>) -> Value {
        json!({
            "type": self.kind,
            "code": self.code,
            "message": self.message,
            "param": self.param,
            "event_id": event_id,
        })
    }
}

impl From<AppError> for EventError {
    /// OpenAI's type and code for the error a request would get.
    fn from(e: AppError) -> Self {
        let (_, body) = openai_error(&e);
        let field = |key: &str| body["error"][key].as_str().map(String::from);
        Self {
            kind: field("type").unwrap_or_else(|| "server_error".into()),
            code: field("code").unwrap_or_else(|| "internal".into()),
            message: field("message").unwrap_or_default(),
            param: field("param"),
        }
    }
}

/// The session's outgoing events, each given an id.
#[derive(Clone)]
struct Events(mpsc::Sender<Outgoing>);

impl Events {
    /// Sends `event` with a fresh `event_id`, waiting while the client is behind.
    async fn send(&self, mut event: Value) {
        event["event_id"] = json!(new_id("event"));
        let _ = self.0.send(Outgoing::Event(event)).await;
    }

    /// Sends `event` unless the client is too far behind (for deltas, from the engine's thread).
    fn try_send(&self, mut event: Value) {
        event["event_id"] = json!(new_id("event"));
        let _ = self.0.try_send(Outgoing::Event(event));
    }

    /// An `error` event for the client event `client_event_id`.
    async fn error(&self, error: EventError, client_event_id: Option<&str>) {
        self.send(json!({"type": "error", "error": error.to_json(client_event_id)}))
            .await;
    }
}

/// `{prefix}_` and 24 hex digits.
fn new_id(prefix: &str) -> String {
    format!("{prefix}_{}", &uuid::Uuid::new_v4().simple().to_string()[..24])
}

/// One session's state: its settings, its input audio, the item under way.
struct Session {
    id: String,
    state: AppState,
    config: SessionConfig,
    input: InputAudio,
    events: Events,
    /// Utterances and saves for the transcriber, in order.
    queue: mpsc::UnboundedSender<Work>,
    /// Milliseconds of audio that may wait for transcription (`--live-max-pending-sec`).
    pending: Arc<Semaphore>,
    /// The item of the speech under way (server VAD), from its start.
    current_item: Option<String>,
    /// The last committed item.
    previous_item: Option<String>,
}

impl Session {
    fn new(state: &AppState, events: Events, queue: mpsc::UnboundedSender<Work>) -> Self {
        let config = SessionConfig::new(state.transcriptions.models(), state.live.vad().is_ok());
        let pending_ms = state.live.settings.max_pending_sec as usize * 1000;
        Self {
            id: new_id("sess"),
            input: new_input(state, &config),
            state: state.clone(),
            config,
            events,
            queue,
            pending: Arc::new(Semaphore::new(pending_ms)),
            current_item: None,
            previous_item: None,
        }
    }

    /// Handles one client event; a refused one gets an `error` event and changes nothing.
    async fn handle(&mut self, text: &str) {
        let event: Value = match serde_json::from_str(text) {
            Ok(event @ Value::Object(_)) => event,
            _ => {
                let error =
                    EventError::invalid("invalid_json", "each message is one JSON object, an event with a type");
                return self.events.error(error, None).await;
            }
        };
        let event_id = event.get("event_id").and_then(Value::as_str).map(String::from);
        if let Err(error) = self.dispatch(&event, event_id.as_deref()).await {
            self.events.error(error, event_id.as_deref()).await;
        }
    }

    async fn dispatch(&mut self, event: &Value, event_id: Option<&str>) -> Result<(), EventError> {
        match event.get("type").and_then(Value::as_str) {
            Some("session.update") => self.update(event.get("session").unwrap_or(&Value::Null)).await,
            Some("input_audio_buffer.append") => self.append(event).await,
            Some("input_audio_buffer.commit") => {
                let utterance = self.input.commit().map_err(input_error)?;
                let item_id = self.current_item.take().unwrap_or_else(|| new_id("item"));
                self.committed(item_id, utterance).await;
                Ok(())
            }
            Some("input_audio_buffer.clear") => {
                self.input.clear();
                self.current_item = None;
                self.events.send(json!({"type": "input_audio_buffer.cleared"})).await;
                Ok(())
            }
            Some("sori.session.save") => {
                let name = save_name(event)?;
                let event_id = event_id.map(String::from);
                let _ = self.queue.send(Work::Save(SaveRequest { name, event_id }));
                Ok(())
            }
            Some(other) => Err(EventError::invalid(
                "unsupported_event",
                format!(
                    "{other} is not an event of transcription sessions; Sori takes session.update, \
                     input_audio_buffer.append, .commit and .clear, and sori.session.save"
                ),
            )
            .with_param("type")),
            None => Err(EventError::invalid("invalid_event", "the event has no type").with_param("type")),
        }
    }

    async fn update(&mut self, session: &Value) -> Result<(), EventError> {
        let vad = self.state.live.vad().map(|_| ());
        let next = self.config.updated(session, self.state.transcriptions.models(), vad)?;
        if (next.rate, next.turn_detection) != (self.config.rate, self.config.turn_detection) {
            self.input = new_input(&self.state, &next);
            self.current_item = None;
        }
        self.config = next;
        let session = self.config.to_json(&self.id);
        self.events
            .send(json!({"type": "session.updated", "session": session}))
            .await;
        Ok(())
    }

    async fn append(&mut self, event: &Value) -> Result<(), EventError> {
        let audio = event.get("audio").and_then(Value::as_str).ok_or_else(|| {
            EventError::invalid("invalid_value", "input_audio_buffer.append needs audio: base64 PCM16")
                .with_param("audio")
        })?;
        let pcm = base64::engine::general_purpose::STANDARD.decode(audio).map_err(|e| {
            EventError::invalid("invalid_value", format!("audio is not base64: {e}")).with_param("audio")
        })?;
        metrics::record_live_audio(pcm.len() as f64 / 2.0 / f64::from(self.config.rate));
        let events = self.input.append(&pcm).map_err(input_error)?;
        for event in events {
            match event {
                InputEvent::SpeechStarted { audio_start_ms } => {
                    let item_id = new_id("item");
                    self.current_item = Some(item_id.clone());
                    self.events
                        .send(json!({"type": "input_audio_buffer.speech_started", "audio_start_ms": audio_start_ms, "item_id": item_id}))
                        .await;
                }
                InputEvent::SpeechStopped(utterance) => {
                    let item_id = self.current_item.take().unwrap_or_else(|| new_id("item"));
                    self.events
                        .send(json!({"type": "input_audio_buffer.speech_stopped", "audio_end_ms": utterance.end_ms, "item_id": item_id}))
                        .await;
                    self.committed(item_id, utterance).await;
                }
            }
        }
        Ok(())
    }

    /// Says the item is committed and queues its transcription, waiting
    /// (and so reading no more audio) while the session has too much audio waiting.
    async fn committed(&mut self, item_id: String, utterance: Utterance) {
        let ended = Instant::now();
        self.events
            .send(json!({"type": "input_audio_buffer.committed", "item_id": item_id, "previous_item_id": self.previous_item}))
            .await;
        self.previous_item = Some(item_id.clone());
        let total = self.state.live.settings.max_pending_sec * 1000;
        let ms = u32::try_from(utterance.end_ms - utterance.start_ms)
            .unwrap_or(u32::MAX)
            .clamp(1, total);
        let Ok(permit) = Arc::clone(&self.pending).acquire_many_owned(ms).await else {
            return;
        };
        let options = TranscribeOptions {
            language: self.config.language.clone(),
            prompt: self.config.prompt.clone(),
            ..TranscribeOptions::default()
        };
        let _ = self.queue.send(Work::Utterance(Pending {
            item_id,
            utterance,
            model: self.config.model.clone(),
            options,
            ended,
            _pending: permit,
        }));
    }
}

/// The input for `config`: server VAD when asked for (the model is there: the settings were checked).
fn new_input(state: &AppState, config: &SessionConfig) -> InputAudio {
    let max_utterance_ms = state.live.settings.max_utterance_sec * 1000;
    let turns = match (config.turn_detection, state.live.vad()) {
        (Some(params), Ok(vad)) => Some(TurnDetector::new(params, vad.scorer(), max_utterance_ms)),
        _ => None,
    };
    InputAudio::new(config.rate, turns, max_utterance_ms)
}

/// The name a `sori.session.save` event gives, if any; checked here so a bad one is answered at once.
fn save_name(event: &Value) -> Result<Option<String>, EventError> {
    let bad = |message: String| EventError::invalid("invalid_value", message).with_param("name");
    match event.get("name") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(name)) if name.trim().is_empty() => {
            Err(bad("name is empty; leave it out for a default".into()))
        }
        Some(Value::String(name)) if name.chars().count() > MAX_NAME_CHARS => Err(bad(format!(
            "name is {} characters; {MAX_NAME_CHARS} at most",
            name.chars().count()
        ))),
        Some(Value::String(name)) => Ok(Some(name.trim().to_string())),
        Some(_) => Err(bad("name is a string: what the history shows for the session".into())),
    }
}

fn input_error(e: InputError) -> EventError {
    match e {
        InputError::OddBytes(_) => EventError::invalid("invalid_value", e.to_string()).with_param("audio"),
        InputError::CommitEmpty(_) => EventError::invalid("input_audio_buffer_commit_empty", e.to_string()),
        InputError::BufferFull(_) => EventError::invalid("input_audio_buffer_full", e.to_string()),
        InputError::Vad(_) => EventError {
            kind: "server_error".into(),
            code: "vad_failed".into(),
            message: e.to_string(),
            param: None,
        },
    }
}

/// Transcribes the session's utterances one after another, so their events
/// come in order, and saves the session where asked (after the utterances before the ask).
async fn transcribe_in_order(state: AppState, mut queue: mpsc::UnboundedReceiver<Work>, events: Events) {
    let mut totals = SessionTotals::default();
    let mut transcript = SessionTranscript::default();
    while let Some(work) = queue.recv().await {
        let pending = match work {
            Work::Utterance(pending) => pending,
            Work::Save(request) => {
                save(&state, &transcript, request, &events).await;
                continue;
            }
        };
        let Pending {
            item_id,
            utterance,
            model,
            mut options,
            ended,
            _pending,
        } = pending;
        let deltas = events.clone();
        let delta_item = item_id.clone();
        let started = AtomicBool::new(false);
        options.progress = Some(ProgressSink(Arc::new(move |segments, _| {
            for segment in segments {
                let delta = if started.swap(true, Ordering::SeqCst) {
                    format!(" {}", segment.text)
                } else {
                    segment.text.clone()
                };
                deltas.try_send(json!({
                    "type": "conversation.item.input_audio_transcription.delta",
                    "item_id": delta_item,
                    "content_index": 0,
                    "delta": delta,
                }));
            }
        })));
        let (start_ms, end_ms) = (utterance.start_ms, utterance.end_ms);
        let name = model.name.clone();
        match live::transcribe(&state.transcriptions, model, utterance.audio, options).await {
            Ok(done) => {
                let latency = ended.elapsed().as_secs_f64();
                metrics::record_live_utterance(&name, Some(latency));
                let record = &done.record;
                totals.add(&record.performance.report, record.audio_duration_sec);
                transcript.add(start_ms, &done);
                events
                    .send(json!({
                        "type": "conversation.item.input_audio_transcription.completed",
                        "item_id": item_id,
                        "content_index": 0,
                        "transcript": done.output.transcript.text,
                        "usage": {"type": "duration", "seconds": record.audio_duration_sec},
                        "sori": {
                            "model": record.model,
                            "language": record.language,
                            "audio_start_ms": start_ms,
                            "audio_end_ms": end_ms,
                            "latency_sec": crate::rounding::round_to(latency, 4),
                            "performance": record.performance,
                            "timings": record.timings,
                            "session": totals,
                        },
                    }))
                    .await;
            }
            Err(e) => {
                metrics::record_live_utterance(&name, None);
                let error = EventError::from(e);
                events
                    .send(json!({
                        "type": "conversation.item.input_audio_transcription.failed",
                        "item_id": item_id,
                        "content_index": 0,
                        "error": error.to_json(None),
                    }))
                    .await;
            }
        }
    }
}

/// Keeps the session's transcript as one transcription and says so
/// (`sori.session.saved`, with its record), or why not (`error`).
async fn save(state: &AppState, transcript: &SessionTranscript, request: SaveRequest, events: &Events) {
    let transcriptions = &state.transcriptions;
    let kept = match transcript.to_record(request.name.as_deref(), transcriptions.replica()) {
        Ok((record, text, segments)) => transcriptions
            .keep(&record, &text, &segments)
            .await
            .map(|()| record)
            .map_err(|e| EventError::from(AppError::from(e))),
        Err(refused) => Err(EventError::invalid("session_not_saved", refused.to_string())),
    };
    match kept {
        Ok(record) => {
            events
                .send(json!({"type": "sori.session.saved", "file_id": record.file_id, "record": record}))
                .await;
        }
        Err(error) => events.error(error, request.event_id.as_deref()).await,
    }
}
