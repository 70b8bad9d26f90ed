// Sori's page in Korean and English: every label, and the language chosen.

const TEXT = {
  ko: {
    tagline: "음성을 텍스트로 — 전사마다 드는 비용까지",
    tab_single: "단일 파일", tab_batch: "일괄 처리", language: "언어",
    lang_auto: "자동 감지", switch_to: "English",
    drop_single: "오디오 파일을 끌어다 놓거나 클릭해서 선택하세요",
    drop_batch: "여러 오디오 파일을 끌어다 놓거나 클릭해서 선택하세요",
    drop_hint: "WAV, MP3, FLAC, Ogg, M4A",
    uploading: "업로드 중… {pct}%", transcribing: "전사 중…",
    transcript: "전사 결과", segments: "구간", copy: "복사", copied: "복사됨",
    download: "다운로드", performance: "성능",
    cpu_avg: "CPU 평균", cpu_max: "CPU 최대", ram_avg: "RAM 평균", ram_peak: "RAM 최대",
    gpu_vram: "GPU VRAM", gpu_vram_peak: "GPU VRAM 최대", gpu_util: "GPU 활용도", processing: "처리 시간",
    rtf: "실시간 배율", audio: "오디오 길이", no_gpu: "GPU 없음",
    scope: "측정 범위", scope_request: "이 요청만", scope_request_beside: "이 요청만 (다른 작업자에서 동시 작업 {n}개)", scope_process: "프로세스 전체 (동시 작업 {n}개 포함)",
    scope_unrecorded: "프로세스 전체 (기록 없음)",
    measured_own: "자체 수치로 측정된 파일", measured_process_wide: "프로세스 전체로 측정된 파일",
    concurrent_max: "한 파일과 동시에 실행된 최대 작업 수", gpu_whole_device: "GPU 전체",
    batch_title: "일괄 처리", col_name: "파일명", col_status: "상태", col_duration: "시간", col_words: "단어수",
    col_processing: "처리시간", col_language: "언어", col_error: "오류", col_performance: "성능",
    status_queued: "대기", status_processing: "처리 중", status_done: "완료", status_failed: "실패",
    progress: "{done}/{total} 완료 · 실패 {failed}",
    summary_button: "성능 통계", summary_title: "성능 통계",
    rtf_faster: "실시간보다 {n}배 빠름", rtf_slower: "실시간보다 {n}배 느림",
    metric: "지표", mean: "평균", min: "최소", max: "최대",
    files_done: "완료 파일", files_failed: "실패 파일", total_audio: "총 오디오", total_processing: "총 처리 시간",
    throughput: "처리량 (오디오 초/처리 초)", files_total: "전체 파일",
    chart_samples: "요청 동안의 CPU · RAM", chart_per_file: "파일별 처리 시간 · CPU",
    no_samples: "샘플 없음", error_generic: "요청이 실패했습니다",
    col_downloads: "내려받기", key_title: "API 키", key_save: "저장",
    tab_history: "기록", history_title: "전사 기록", batches_title: "일괄 작업",
    search_text: "전사 내용", search_name: "파일명", from: "시작일", to: "종료일", search: "검색", clear: "초기화",
    col_date: "날짜", col_speed: "속도", col_cpu: "CPU 평균", col_ram: "RAM 최대", col_actions: "작업", col_files: "파일",
    col_rtf: "실시간 배율",
    open: "열기", delete: "삭제", cancel: "취소", open_batch: "일괄 작업", more: "더 보기",
    history_empty: "아직 기록이 없습니다", history_no_match: "조건에 맞는 기록이 없습니다",
    batches_empty: "아직 일괄 작업이 없습니다",
    confirm_title: "삭제할까요?",
    confirm_file: "'{name}'의 전사 결과, 구간과 성능 기록을 지웁니다. 되돌릴 수 없습니다.",
    confirm_batch: "{date}의 일괄 작업과 파일 {n}개의 전사 결과, 성능 기록을 지웁니다. 되돌릴 수 없습니다.",
    deleted: "삭제했습니다: {name}", in_batch: "일괄 작업의 파일",
    batch_running: "진행 중", batch_complete: "완료",
    connection_lost: "서버와 연결이 끊겼습니다. 다시 연결하는 중…", reconnected: "서버에 다시 연결되었습니다",
    axis_time: "시간 (초)", chart_legend_time: "시간",
    sort_by: "정렬",
    tab_live: "실시간", live_start: "마이크로 시작", live_stop: "중지", live_idle: "대기 중",
    live_listening: "듣는 중…", live_stopping: "마지막 발화를 전사하는 중…", live_speaking: "말하는 중…",
    live_transcribing: "전사 중…", live_done: "(들린 말 없음)", live_failed: "전사 실패", live_latency: "지연",
    live_utterances: "발화", live_cpu_time: "CPU 시간",
    live_no_microphone: "마이크를 쓸 수 없습니다. 브라우저에서 마이크 권한을 허용하세요.",
    live_closed: "실시간 세션이 끊겼습니다",
    live_save: "중지하면 기록에 저장", live_saved: "세션을 기록에 저장했습니다.", live_open: "열기",
    live_figures_note: "실시간 세션: 수치는 발화들의 작업을 합친 것입니다. 처리 시간과 CPU 시간은 합계, 평균은 처리 시간으로 가중한 평균, 최대·피크는 발화 중 가장 높은 값입니다.",
    close: "닫기", model: "모델", server_unreachable: "서버에 연결할 수 없습니다. 서버가 실행 중인지 확인하고 다시 시도하세요.", any_language: "모든 언어", col_progress: "진행", result_from_history: "{date}에 전사",
  },
  en: {
    tagline: "Speech to text — and what every transcription costs",
    tab_single: "Single file", tab_batch: "Batch", language: "Language",
    lang_auto: "Detect", switch_to: "한국어",
    drop_single: "Drop an audio file here, or click to choose one",
    drop_batch: "Drop audio files here, or click to choose several",
    drop_hint: "WAV, MP3, FLAC, Ogg, M4A",
    uploading: "Uploading… {pct}%", transcribing: "Transcribing…",
    transcript: "Transcript", segments: "Segments", copy: "Copy", copied: "Copied",
    download: "Download", performance: "Performance",
    cpu_avg: "CPU avg", cpu_max: "CPU max", ram_avg: "RAM avg", ram_peak: "RAM peak",
    gpu_vram: "GPU VRAM", gpu_vram_peak: "GPU VRAM peak", gpu_util: "GPU utilization", processing: "Processing time",
    rtf: "Real-time factor", audio: "Audio length", no_gpu: "no GPU",
    scope: "Measured", scope_request: "this request's own", scope_request_beside: "this request's own ({n} other jobs ran beside it in other workers)", scope_process: "whole process ({n} other jobs overlapped)",
    scope_unrecorded: "whole process (not recorded)",
    measured_own: "Files measured on their own", measured_process_wide: "Files measured process-wide",
    concurrent_max: "Most jobs beside one file", gpu_whole_device: "whole GPU",
    batch_title: "Batch", col_name: "File name", col_status: "Status", col_duration: "Duration", col_words: "Words",
    col_processing: "Processing", col_language: "Language", col_error: "Error", col_performance: "Performance",
    status_queued: "queued", status_processing: "processing", status_done: "done", status_failed: "failed",
    progress: "{done}/{total} done · {failed} failed",
    summary_button: "Performance stats", summary_title: "Performance stats",
    rtf_faster: "{n}× faster than real time", rtf_slower: "{n}× slower than real time",
    metric: "Metric", mean: "Mean", min: "Min", max: "Max",
    files_done: "Files done", files_failed: "Files failed", total_audio: "Total audio", total_processing: "Total processing",
    throughput: "Throughput (audio s / processing s)", files_total: "Files",
    chart_samples: "CPU · RAM during the request", chart_per_file: "Processing time · CPU per file",
    no_samples: "no samples", error_generic: "The request failed",
    col_downloads: "Downloads", key_title: "API key", key_save: "Save",
    tab_history: "History", history_title: "Transcriptions", batches_title: "Batches",
    search_text: "Words in the transcript", search_name: "File name", from: "From", to: "To", search: "Search", clear: "Clear",
    col_date: "Date", col_speed: "Speed", col_cpu: "CPU avg", col_ram: "RAM peak", col_actions: "Actions", col_files: "Files",
    col_rtf: "Real-time factor",
    open: "Open", delete: "Delete", cancel: "Cancel", open_batch: "Its batch", more: "Load more",
    history_empty: "Nothing transcribed yet", history_no_match: "No transcription matches",
    batches_empty: "No batches yet",
    confirm_title: "Delete?",
    confirm_file: "The transcript, segments and figures of “{name}” are removed. This cannot be undone.",
    confirm_batch: "The batch of {date} and the transcripts and figures of its {n} files are removed. This cannot be undone.",
    deleted: "Deleted: {name}", in_batch: "file of a batch",
    batch_running: "running", batch_complete: "complete",
    connection_lost: "Lost the connection to the server. Reconnecting…", reconnected: "Connected to the server again",
    axis_time: "Time (s)", chart_legend_time: "Time",
    sort_by: "Sort",
    tab_live: "Live", live_start: "Start with the microphone", live_stop: "Stop", live_idle: "Not listening",
    live_listening: "Listening…", live_stopping: "Transcribing the last words…", live_speaking: "Speaking…",
    live_transcribing: "Transcribing…", live_done: "(no words heard)", live_failed: "Transcription failed", live_latency: "latency",
    live_utterances: "Utterances", live_cpu_time: "CPU time",
    live_no_microphone: "The microphone cannot be used. Allow this page to use it in the browser.",
    live_closed: "The live session was closed",
    live_save: "Save to history when stopped", live_saved: "The session is saved in the history.", live_open: "Open",
    live_figures_note: "A live session: the figures combine its utterances' work. Processing and CPU time are sums, averages are weighted by processing time, maxima and peaks are the highest of any utterance.",
    close: "Close", model: "Model", server_unreachable: "The server cannot be reached. Check that it is running, then try again.", any_language: "Any language", col_progress: "Progress", result_from_history: "transcribed {date}",
  },
};

/** The languages a transcription can be asked for ("auto": let Whisper detect it). */
export const LANGUAGES = ["auto", "ko", "en", "ja", "zh", "es", "fr", "de"];

let lang = (localStorage.getItem("sori.lang") || navigator.language || "ko").toLowerCase().startsWith("ko") ? "ko" : "en";

/** The page's language now ("ko" or "en"). */
export function currentLanguage() {
  return lang;
}

/** Switches the page's language (kept in this browser). */
export function switchLanguage() {
  lang = lang === "ko" ? "en" : "ko";
  localStorage.setItem("sori.lang", lang);
}

/** The label `key` in the page's language, with `{name}` filled from `vars`. */
export function t(key, vars = {}) {
  const s = (TEXT[lang] && TEXT[lang][key]) || TEXT.en[key] || key;
  return s.replace(/\{(\w+)\}/g, (_, k) => String(vars[k] ?? ""));
}
