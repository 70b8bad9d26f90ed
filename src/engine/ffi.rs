//! A small safe layer over whisper.cpp's C API (whisper-rs-sys): a loaded
//! model, one state per transcription, a full decode from a log-mel
//! spectrogram that Sori computed itself, and the decoded segments.
//!
//! whisper-rs wraps the same API but only decodes from raw samples, which
//! makes whisper.cpp compute the spectrogram again on every call.

use std::ffi::{c_char, c_void, CStr, CString};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::ptr::{self, NonNull};
use std::sync::Once;

use whisper_rs_sys as sys;

use super::mel::LogMelSpectrogram;
use super::repeats;

/// A model loaded by whisper.cpp.
pub struct Context(NonNull<sys::whisper_context>);

// SAFETY: whisper.cpp does not change a context after loading it; everything a
// transcription writes lives in its own `whisper_state`, so one context may be
// used from several threads at once (whisper.cpp's documented way to run
// transcriptions in parallel).
unsafe impl Send for Context {}
unsafe impl Sync for Context {}

impl Context {
    /// Loads a ggml model file onto GPU number `gpu` (as [`super::backend::choose`]
    /// counts them), or the CPU when `None`.
    pub fn load(path: &Path, gpu: Option<u32>) -> Result<Self, String> {
        route_logs_to_tracing();
        let c_path = CString::new(path.as_os_str().as_bytes()).map_err(|_| "the model path contains a NUL byte")?;
        // SAFETY: plain constructor returning a value.
        let mut params = unsafe { sys::whisper_context_default_params() };
        params.use_gpu = gpu.is_some();
        params.gpu_device = gpu.map_or(0, |n| n as i32);
        // whisper.cpp turns flash attention on by default; on CPUs it made the
        // encoder slower here (BENCHMARKS.md). On a GPU whisper.cpp's default stays.
        params.flash_attn = gpu.is_some();
        // SAFETY: the path is a valid C string for the duration of the call. The
        // context gets no state of its own (each transcription makes one), which
        // saves its buffers: 22 MiB of idle memory with tiny.en.
        let ptr = unsafe { sys::whisper_init_from_file_with_params_no_state(c_path.as_ptr(), params) };
        NonNull::new(ptr)
            .map(Self)
            .ok_or_else(|| format!("whisper.cpp could not load {}", path.display()))
    }

    /// Whether the model knows languages other than English.
    pub fn is_multilingual(&self) -> bool {
        // SAFETY: the context is valid until dropped.
        unsafe { sys::whisper_is_multilingual(self.0.as_ptr()) != 0 }
    }

    /// The end-of-text token: ids below it are text.
    pub fn token_eot(&self) -> i32 {
        // SAFETY: as above.
        unsafe { sys::whisper_token_eot(self.0.as_ptr()) }
    }

    /// A fresh state: one transcription's working memory, reused for every
    /// window it decodes.
    pub fn new_state(&self) -> Result<State<'_>, String> {
        // SAFETY: as above; the state is freed before the context (it borrows it).
        let ptr = unsafe { sys::whisper_init_state(self.0.as_ptr()) };
        NonNull::new(ptr)
            .map(|ptr| State { context: self, ptr })
            .ok_or_else(|| "whisper.cpp could not allocate a state".to_string())
    }
}

impl Drop for Context {
    fn drop(&mut self) {
        // SAFETY: the pointer came from whisper_init_from_file_with_params and no state outlives `self`.
        unsafe { sys::whisper_free(self.0.as_ptr()) }
    }
}

/// How to decode: greedy, one candidate, no text carried between windows.
pub struct Params {
    raw: sys::whisper_full_params,
    /// Owns the string `raw.language` points to.
    _language: CString,
    /// Owns the string `raw.initial_prompt` points to, when there is one.
    _prompt: Option<CString>,
    /// Ends the decode at the first run of words written twice in a row.
    stop_on_repeat: bool,
}

/// How a decode went.
#[derive(Debug, Clone, Copy)]
pub struct Decode {
    /// Tries it took (more than one when whisper.cpp fell back to a higher temperature).
    pub attempts: u32,
    /// It was ended at a repeated run of words (with `stop_on_repeat`).
    pub stopped_on_repeat: bool,
}

impl Params {
    /// Greedy decoding on `threads` threads in `language` (a Whisper code or `auto`).
    pub fn greedy(threads: usize, language: &str) -> Self {
        let language = CString::new(language).unwrap_or_else(|_| c"auto".to_owned());
        // SAFETY: plain constructor returning a value.
        let mut raw =
            unsafe { sys::whisper_full_default_params(sys::whisper_sampling_strategy_WHISPER_SAMPLING_GREEDY) };
        raw.greedy.best_of = 1;
        raw.n_threads = threads as i32;
        raw.language = language.as_ptr();
        raw.no_context = true;
        raw.print_special = false;
        raw.print_progress = false;
        raw.print_realtime = false;
        raw.print_timestamps = false;
        Self {
            raw,
            _language: language,
            _prompt: None,
            stop_on_repeat: false,
        }
    }

    /// Translates into English instead of transcribing.
    pub fn translate(mut self, translate: bool) -> Self {
        self.raw.translate = translate;
        self
    }

    /// Text the decoder reads before the audio (Whisper's initial prompt):
    /// spellings, names, a style to follow. A prompt with a NUL byte is cut there.
    pub fn prompt(mut self, prompt: Option<&str>) -> Self {
        let prompt = prompt.map(|p| CString::new(p.split('\0').next().unwrap_or_default()).unwrap_or_default());
        self.raw.initial_prompt = prompt.as_ref().map_or(ptr::null(), |p| p.as_ptr());
        self._prompt = prompt;
        self
    }

    /// Samples at `temperature`; with `fallback`, a decode that fails whisper's
    /// checks is tried again at higher temperatures (whisper.cpp's schedule).
    pub fn temperature(mut self, temperature: f32, fallback: bool) -> Self {
        self.raw.temperature = temperature;
        if !fallback {
            self.raw.temperature_inc = 0.0;
        }
        self
    }

    /// The temperature of the decode's `attempt`-th try (1 = the first),
    /// following whisper.cpp's schedule (`temperature`, then steps of
    /// `temperature_inc` up to 1.0).
    pub fn temperature_of_attempt(&self, attempt: u32) -> f32 {
        let (first, step) = (self.raw.temperature, self.raw.temperature_inc);
        if step <= 0.0 {
            return first;
        }
        let mut schedule = Vec::new();
        let mut t = first;
        while t < 1.0 + 1e-6 {
            schedule.push(t);
            t += step;
        }
        let last = schedule.len().saturating_sub(1);
        schedule
            .get((attempt.max(1) as usize - 1).min(last))
            .copied()
            .unwrap_or(first)
    }

    /// Times every token (needs the samples passed to [`State::full`]).
    pub fn token_timestamps(mut self, on: bool) -> Self {
        self.raw.token_timestamps = on;
        self
    }

    /// Encodes `frames` audio-context frames instead of the full 30 s window,
    /// and decodes once, without temperature fallback. Such a decode of audio
    /// shorter than its context can loop, writing the same words again to
    /// the end of the text context (220 tokens); it is ended at the first
    /// repeated run of words instead (whisper.cpp keeps the text up to the last
    /// timestamp before it).
    pub fn shortened_context(mut self, frames: usize) -> Self {
        self.raw.audio_ctx = frames as i32;
        self.raw.temperature_inc = 0.0;
        self.stop_on_repeat = true;
        self
    }

    /// Whether a decode with these parameters needs the samples (token timestamps do).
    pub fn needs_samples(&self) -> bool {
        self.raw.token_timestamps
    }
}

/// One transcription's working memory and results.
pub struct State<'c> {
    context: &'c Context,
    ptr: NonNull<sys::whisper_state>,
}

/// A decoded segment, as whisper.cpp returned it.
pub struct RawSegment {
    /// Start and end, in 10 ms units.
    pub t0: i64,
    pub t1: i64,
    pub text: String,
    /// The probability that the window held no speech.
    pub no_speech_prob: f32,
    /// Every token, special tokens included.
    pub tokens: Vec<RawToken>,
}

/// One decoded token.
pub struct RawToken {
    pub id: i32,
    /// Its log-probability.
    pub logprob: f32,
    /// Start and end, in 10 ms units (-1 unless token timestamps were asked for).
    pub t0: i64,
    pub t1: i64,
    /// Its bytes: a piece of UTF-8 that may end inside a character.
    pub bytes: Vec<u8>,
}

impl State<'_> {
    /// Gives the state the spectrogram to decode, which whisper.cpp copies;
    /// every decode until the next call reads that copy.
    pub fn set_mel(&mut self, mel: &LogMelSpectrogram) -> Result<(), String> {
        // SAFETY: `mel.data` holds n_mel x n_len floats, which whisper.cpp copies.
        let set = unsafe {
            sys::whisper_set_mel_with_state(
                self.context.0.as_ptr(),
                self.ptr.as_ptr(),
                mel.data.as_ptr(),
                mel.n_len as i32,
                mel.n_mel as i32,
            )
        };
        match set {
            0 => Ok(()),
            _ => Err(format!(
                "the model expects another number of mel bands than {}",
                mel.n_mel
            )),
        }
    }

    /// Runs whisper.cpp's decode (encoder, decoder, its fallbacks) over one
    /// window at the start of the first `frames` frames of the state's spectrogram.
    ///
    /// Where the decoder stops before the end of the audio, whisper.cpp would
    /// encode a whole window again from there; it is stopped instead, so the
    /// caller can decode what is left with a context sized to it.
    ///
    /// With `samples` (the window's audio, which token timestamps need to find
    /// where each token's sound starts and ends), whisper.cpp computes the same
    /// spectrogram from them itself. Returns how many tries the decode took
    /// (more than one when whisper.cpp fell back to a higher temperature) and
    /// whether it was stopped at a repeat.
    pub fn full(&mut self, params: &Params, frames: usize, samples: Option<&[f32]>) -> Result<Decode, String> {
        let (ctx, state) = (self.context.0.as_ptr(), self.ptr.as_ptr());
        let mut raw = params.raw;
        // whisper_set_mel counts every frame as audio, the 30 s of padding too.
        raw.duration_ms = (frames * 10) as i32;
        let mut encoded = false;
        raw.encoder_begin_callback = Some(first_encoding_only);
        raw.encoder_begin_callback_user_data = ptr::from_mut(&mut encoded).cast();
        let mut watch = Watch {
            stop_on_repeat: params.stop_on_repeat,
            decode: Decode {
                attempts: 0,
                stopped_on_repeat: false,
            },
        };
        raw.logits_filter_callback = Some(watch_decode);
        raw.logits_filter_callback_user_data = ptr::from_mut(&mut watch).cast();
        let (pcm, n_samples) = samples.map_or((ptr::null(), 0), |s| (s.as_ptr(), s.len() as i32));
        // SAFETY: without samples (n_samples = 0) whisper.cpp uses the
        // spectrogram given to `set_mel`; with them, it reads `n_samples`
        // floats, alive for the call. `raw.language` and `raw.initial_prompt`
        // point into `params`, the callbacks' data to `encoded` and
        // `watch`, all alive here.
        let code = unsafe { sys::whisper_full_with_state(ctx, state, raw, pcm, n_samples) };
        match code {
            0 => Ok(watch.decode),
            code => Err(format!("whisper.cpp failed with code {code}")),
        }
    }

    /// The language used by the last decode (detected or given), as a Whisper code.
    pub fn language(&self) -> Option<&'static str> {
        // SAFETY: the state is valid.
        language_code(unsafe { sys::whisper_full_lang_id_from_state(self.ptr.as_ptr()) })
    }

    /// The segments of the last decode.
    pub fn segments(&self) -> Vec<RawSegment> {
        let state = self.ptr.as_ptr();
        // SAFETY: indices stay below the counts whisper.cpp reports; the text
        // pointers are valid until the next decode on this state, and are copied.
        unsafe {
            (0..sys::whisper_full_n_segments_from_state(state))
                .map(|i| RawSegment {
                    t0: sys::whisper_full_get_segment_t0_from_state(state, i),
                    t1: sys::whisper_full_get_segment_t1_from_state(state, i),
                    text: c_text(sys::whisper_full_get_segment_text_from_state(state, i)),
                    no_speech_prob: sys::whisper_full_get_segment_no_speech_prob_from_state(state, i),
                    tokens: (0..sys::whisper_full_n_tokens_from_state(state, i))
                        .map(|j| {
                            let data = sys::whisper_full_get_token_data_from_state(state, i, j);
                            RawToken {
                                id: data.id,
                                logprob: data.plog,
                                t0: data.t0,
                                t1: data.t1,
                                bytes: c_bytes(sys::whisper_token_to_str(self.context.0.as_ptr(), data.id)),
                            }
                        })
                        .collect(),
                })
                .collect()
        }
    }
}

impl Drop for State<'_> {
    fn drop(&mut self) {
        // SAFETY: the pointer came from whisper_init_state and is freed once.
        unsafe { sys::whisper_free_state(self.ptr.as_ptr()) }
    }
}

/// whisper.cpp asks before each encoding; the first is allowed, a later one
/// ends the decode (with the segments decoded so far).
///
/// # Safety
/// `encoded` points to the `bool` that `State::full` set up for this decode.
unsafe extern "C" fn first_encoding_only(
    _: *mut sys::whisper_context,
    _: *mut sys::whisper_state,
    encoded: *mut c_void,
) -> bool {
    !std::mem::replace(&mut *encoded.cast::<bool>(), true)
}

/// What `watch_decode` keeps of one decode.
struct Watch {
    stop_on_repeat: bool,
    decode: Decode,
}

/// whisper.cpp calls this before every sampling step of every try, with the
/// tokens of the try so far: a try's first step has none, so counting those
/// counts the tries. With `stop_on_repeat`, once the text ends with a run of
/// words written twice, every token but the end of text is ruled out.
///
/// # Safety
/// `watch` points to the `Watch` that `State::full` set up for this decode;
/// `tokens` holds `n_tokens` tokens and `logits` the vocabulary's logits.
unsafe extern "C" fn watch_decode(
    ctx: *mut sys::whisper_context,
    _: *mut sys::whisper_state,
    tokens: *const sys::whisper_token_data,
    n_tokens: i32,
    logits: *mut f32,
    watch: *mut c_void,
) {
    let watch = &mut *watch.cast::<Watch>();
    if n_tokens == 0 {
        watch.decode.attempts += 1;
        return;
    }
    if !watch.stop_on_repeat || tokens.is_null() || logits.is_null() {
        return;
    }
    let eot = sys::whisper_token_eot(ctx);
    let mut text = Vec::new();
    for token in std::slice::from_raw_parts(tokens, n_tokens as usize) {
        if token.id < eot {
            text.extend(c_bytes(sys::whisper_token_to_str(ctx, token.id)));
        }
    }
    if repeats::ends_with_tandem_repeat(&String::from_utf8_lossy(&text), repeats::MIN_REPEATED_WORDS) {
        let vocabulary = std::slice::from_raw_parts_mut(logits, sys::whisper_n_vocab(ctx) as usize);
        for (id, logit) in vocabulary.iter_mut().enumerate() {
            if id as i32 != eot {
                *logit = f32::NEG_INFINITY;
            }
        }
        watch.decode.stopped_on_repeat = true;
    }
}

/// What whisper.cpp logs, as an error, when `first_encoding_only` ends a decode.
const STOPPED_BEFORE_ENCODING: &str = "encoder_begin_callback returned false";

/// Whisper's id for a language code (`en`, `ko`), if it knows the language.
pub fn language_id(code: &str) -> Option<i32> {
    let code = CString::new(code).ok()?;
    // SAFETY: a lookup in whisper.cpp's static table.
    let id = unsafe { sys::whisper_lang_id(code.as_ptr()) };
    (id >= 0).then_some(id)
}

/// The English name of a language code, lower case (`english`, `korean`).
pub fn language_name(code: &str) -> Option<&'static str> {
    let id = language_id(code)?;
    // SAFETY: whisper_lang_str_full returns null or a pointer into a static table.
    let ptr = unsafe { sys::whisper_lang_str_full(id) };
    (!ptr.is_null())
        .then(|| unsafe { CStr::from_ptr(ptr) }.to_str().ok())
        .flatten()
}

/// The code of a language id.
fn language_code(id: i32) -> Option<&'static str> {
    // SAFETY: whisper_lang_str returns null or a pointer into a static table.
    let ptr = unsafe { sys::whisper_lang_str(id) };
    (!ptr.is_null())
        .then(|| unsafe { CStr::from_ptr(ptr) }.to_str().ok())
        .flatten()
}

/// Copies a C string that may hold a partial UTF-8 sequence (a segment can end
/// inside a multi-byte character).
///
/// # Safety
/// `ptr` is null or a valid NUL-terminated string.
unsafe fn c_text(ptr: *const c_char) -> String {
    String::from_utf8_lossy(&c_bytes(ptr)).into_owned()
}

/// Copies the bytes of a C string.
///
/// # Safety
/// `ptr` is null or a valid NUL-terminated string.
unsafe fn c_bytes(ptr: *const c_char) -> Vec<u8> {
    if ptr.is_null() {
        return Vec::new();
    }
    CStr::from_ptr(ptr).to_bytes().to_vec()
}

/// Sends whisper.cpp's and ggml's own log lines to `tracing` (target
/// `whisper_cpp`) instead of stderr.
fn route_logs_to_tracing() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // SAFETY: the callback is a plain function that lives for the whole program.
        unsafe {
            sys::whisper_log_set(Some(forward_log), ptr::null_mut());
            sys::ggml_log_set(Some(forward_log), ptr::null_mut());
        }
    });
}

unsafe extern "C" fn forward_log(level: sys::ggml_log_level, text: *const c_char, _: *mut c_void) {
    let text = c_text(text);
    let text = text.trim_end();
    if text.is_empty() {
        return;
    }
    match level {
        _ if text.contains(STOPPED_BEFORE_ENCODING) => tracing::trace!(target: "whisper_cpp", "{text}"),
        sys::ggml_log_level_GGML_LOG_LEVEL_ERROR => tracing::error!(target: "whisper_cpp", "{text}"),
        sys::ggml_log_level_GGML_LOG_LEVEL_WARN => tracing::warn!(target: "whisper_cpp", "{text}"),
        sys::ggml_log_level_GGML_LOG_LEVEL_INFO => tracing::debug!(target: "whisper_cpp", "{text}"),
        _ => tracing::trace!(target: "whisper_cpp", "{text}"),
    }
}
