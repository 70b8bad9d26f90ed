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

/// A model loaded by whisper.cpp.
pub struct Context(NonNull<sys::whisper_context>);

// SAFETY: whisper.cpp does not change a context after loading it; everything a
// transcription writes lives in its own `whisper_state`, so one context may be
// used from several threads at once (whisper.cpp's documented way to run
// transcriptions in parallel).
unsafe impl Send for Context {}
unsafe impl Sync for Context {}

impl Context {
    /// Loads a ggml model file.
    pub fn load(path: &Path) -> Result<Self, String> {
        route_logs_to_tracing();
        let c_path = CString::new(path.as_os_str().as_bytes()).map_err(|_| "the model path contains a NUL byte")?;
        // SAFETY: plain constructor returning a value.
        let mut params = unsafe { sys::whisper_context_default_params() };
        // whisper.cpp turns flash attention on by default; on CPUs it made the
        // encoder slower here (BENCHMARKS.md).
        params.flash_attn = false;
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
        }
    }

    /// Encodes `frames` audio-context frames instead of the full 30 s window,
    /// and decodes once, without temperature fallback.
    pub fn shortened_context(mut self, frames: usize) -> Self {
        self.raw.audio_ctx = frames as i32;
        self.raw.temperature_inc = 0.0;
        self
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
    /// Every token's id and log-probability, special tokens included.
    pub tokens: Vec<(i32, f32)>,
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
    pub fn full(&mut self, params: &Params, frames: usize) -> Result<(), String> {
        let (ctx, state) = (self.context.0.as_ptr(), self.ptr.as_ptr());
        let mut raw = params.raw;
        // whisper_set_mel counts every frame as audio, the 30 s of padding too.
        raw.duration_ms = (frames * 10) as i32;
        let mut encoded = false;
        raw.encoder_begin_callback = Some(first_encoding_only);
        raw.encoder_begin_callback_user_data = ptr::from_mut(&mut encoded).cast();
        // SAFETY: no samples are passed (n_samples = 0), so whisper.cpp uses the
        // spectrogram given to `set_mel`; `raw.language` points into `params`,
        // and the callback's data to `encoded`, both alive here.
        let code = unsafe { sys::whisper_full_with_state(ctx, state, raw, ptr::null(), 0) };
        match code {
            0 => Ok(()),
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
                    tokens: (0..sys::whisper_full_n_tokens_from_state(state, i))
                        .map(|j| {
                            let data = sys::whisper_full_get_token_data_from_state(state, i, j);
                            (data.id, data.plog)
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

/// What whisper.cpp logs, as an error, when `first_encoding_only` ends a decode.
const STOPPED_BEFORE_ENCODING: &str = "encoder_begin_callback returned false";

/// Whisper's id for a language code (`en`, `ko`), if it knows the language.
pub fn language_id(code: &str) -> Option<i32> {
    let code = CString::new(code).ok()?;
    // SAFETY: a lookup in whisper.cpp's static table.
    let id = unsafe { sys::whisper_lang_id(code.as_ptr()) };
    (id >= 0).then_some(id)
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
    if ptr.is_null() {
        return String::new();
    }
    String::from_utf8_lossy(CStr::from_ptr(ptr).to_bytes()).into_owned()
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
