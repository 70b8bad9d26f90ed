//! Voice-activity detection on real speech: Silero VAD run by tract against
//! ONNX Runtime's run of Silero's own model, and the turns it cuts against the
//! pauses of a real recording.

mod common;

use std::sync::OnceLock;

use sori::vad::turns::{ServerVad, Turn, TurnDetector};
use sori::vad::{SileroVad, FRAME_SAMPLES};

const RATE: usize = 16_000;

fn vad() -> &'static SileroVad {
    static VAD: OnceLock<SileroVad> = OnceLock::new();
    VAD.get_or_init(|| SileroVad::load(&common::vad_model_path()).expect("load the VAD model"))
}

fn jfk() -> Vec<f32> {
    let bytes = std::fs::read(common::fixture_audio("jfk.wav")).unwrap();
    sori::audio::prepare(bytes.into(), 60.0).unwrap().samples
}

fn silence(ms: usize) -> Vec<f32> {
    vec![0.0; ms * RATE / 1000]
}

/// 2 s of silence, jfk.wav, 1.5 s of silence, jfk.wav again, 1 s of silence;
/// and where each copy of jfk.wav starts, ms.
fn two_speeches() -> (Vec<f32>, [usize; 2]) {
    let speech = jfk();
    let second = 2000 + speech.len() * 1000 / RATE + 1500;
    let stream = [silence(2000), speech.clone(), silence(1500), speech, silence(1000)].concat();
    (stream, [2000, second])
}

/// Feeds `stream` in chunks of `chunk` samples and collects the turns.
fn turns(stream: &[f32], params: ServerVad, max_utterance_ms: u32, chunk: usize) -> Vec<Turn> {
    let mut detector = TurnDetector::new(params, vad().scorer(), max_utterance_ms);
    let mut turns = Vec::new();
    for piece in stream.chunks(chunk) {
        turns.extend(detector.push(piece).unwrap());
    }
    turns.extend(detector.finish());
    turns
}

/// The utterances in `turns` as (start ms, end ms, audio), checking that
/// starts and stops alternate.
fn utterances(turns: &[Turn]) -> Vec<(u64, u64, &[f32])> {
    assert!(
        turns.len().is_multiple_of(2),
        "every start has its stop: {}",
        turns.len()
    );
    turns
        .chunks(2)
        .map(|pair| match pair {
            [Turn::Started { audio_start_ms }, Turn::Stopped { audio_end_ms, audio }] => {
                (*audio_start_ms, *audio_end_ms, audio.as_slice())
            }
            other => panic!("turns out of order: {other:?}"),
        })
        .collect()
}

#[test]
fn probabilities_match_onnx_runtime_on_silero_s_own_model() {
    let reference: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(common::fixture_audio("jfk.silero_vad.json")).unwrap()).unwrap();
    let expected: Vec<f64> = reference["probabilities"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_f64().unwrap())
        .collect();
    let samples = jfk();
    assert_eq!(expected.len(), samples.len() / FRAME_SAMPLES);
    assert!(expected.iter().any(|p| *p > 0.9) && expected.iter().any(|p| *p < 0.1));
    let mut scorer = vad().scorer();
    let worst = samples
        .chunks_exact(FRAME_SAMPLES)
        .zip(&expected)
        .map(|(frame, want)| (f64::from(scorer.score(frame).unwrap()) - want).abs())
        .fold(0.0, f64::max);
    assert!(worst < 1e-4, "tract differs from ONNX Runtime by up to {worst}");
}

#[test]
fn utterances_follow_the_pauses_of_real_speech() {
    let (stream, copies) = two_speeches();
    let turns = turns(&stream, ServerVad::default(), 30_000, 320);
    let found = utterances(&turns);
    assert!(found.len() >= 2, "{found:?}");

    // Speech begins with "and" 0.29 s into the clip; the utterance's audio starts up to 300 ms before.
    let first_start = found[0].0 as usize;
    assert!(
        (2290 - 300 - 64..=2290).contains(&first_start),
        "first start {first_start} ms"
    );

    let onsets = jfk_onsets_ms();
    for copy in copies {
        for onset in &onsets {
            let at = (copy + onset) as u64;
            assert!(
                found.iter().any(|(start, end, _)| (*start..*end).contains(&at)),
                "the word at {at} ms is in no utterance: {:?}",
                found.iter().map(|(s, e, _)| (s, e)).collect::<Vec<_>>()
            );
        }
    }
    let gap_middle = (copies[1] - 750) as u64;
    for (start, end, audio) in &found {
        assert!(
            !(start..end).contains(&&gap_middle),
            "an utterance spans the silence between the copies"
        );
        let (from, to) = (*start as usize * RATE / 1000, *end as usize * RATE / 1000);
        assert_eq!(
            *audio,
            &stream[from..to],
            "an utterance's audio is the stream's, {start}-{end} ms"
        );
    }
    let in_second_copy = found
        .iter()
        .filter(|(start, ..)| *start as usize >= copies[1] - 400)
        .count();
    assert!(in_second_copy >= 1 && in_second_copy < found.len());
}

#[test]
fn the_size_of_the_pieces_sent_does_not_change_the_turns() {
    let (stream, _) = two_speeches();
    let whole = turns(&stream, ServerVad::default(), 30_000, stream.len());
    assert_eq!(turns(&stream, ServerVad::default(), 30_000, 320), whole);
    assert_eq!(turns(&stream, ServerVad::default(), 30_000, 1601), whole);
}

#[test]
fn a_longer_silence_duration_joins_utterances() {
    let (stream, _) = two_speeches();
    let with = |silence_duration_ms| {
        let params = ServerVad {
            silence_duration_ms,
            ..ServerVad::default()
        };
        utterances(&turns(&stream, params, 30_000, 320)).len()
    };
    // jfk.wav's longest pause is about a second, the silence between the copies 1.5 s and more:
    // with 1.4 s each copy is one utterance, and shorter silences cut more.
    let counts: Vec<usize> = [300, 500, 1000, 1400].into_iter().map(with).collect();
    assert_eq!(counts[3], 2, "{counts:?}");
    assert!(
        counts.windows(2).all(|pair| pair[0] >= pair[1]) && counts[0] > counts[3],
        "{counts:?}"
    );
}

#[test]
fn a_higher_threshold_hears_less_speech() {
    let (stream, _) = two_speeches();
    let speech_ms = |threshold| {
        let params = ServerVad {
            threshold,
            ..ServerVad::default()
        };
        utterances(&turns(&stream, params, 30_000, 320))
            .iter()
            .map(|(start, end, _)| end - start)
            .sum::<u64>()
    };
    assert!(
        speech_ms(0.99) < speech_ms(0.5),
        "{} {}",
        speech_ms(0.99),
        speech_ms(0.5)
    );
}

#[test]
fn an_utterance_longer_than_the_limit_is_cut_and_goes_on() {
    let (stream, _) = two_speeches();
    let params = ServerVad {
        silence_duration_ms: 2000,
        ..ServerVad::default()
    };
    let turns = turns(&stream, params, 3000, 320);
    let found = utterances(&turns);
    for (start, end, audio) in &found {
        assert!(
            audio.len() <= 3000 * RATE / 1000,
            "{start}-{end} ms is longer than the limit"
        );
    }
    let cut_and_resumed = found.windows(2).filter(|pair| pair[0].1 == pair[1].0).count();
    assert!(
        cut_and_resumed >= 4,
        "{:?}",
        found.iter().map(|(s, e, _)| (s, e)).collect::<Vec<_>>()
    );
}

#[test]
fn silence_and_noise_are_not_speech() {
    let mut seed = 12345u32;
    let noise: Vec<f32> = (0..5 * RATE)
        .map(|_| {
            seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (f64::from(seed) / f64::from(u32::MAX) - 0.5) as f32 * 0.002
        })
        .collect();
    let stream = [silence(3000), noise].concat();
    assert_eq!(turns(&stream, ServerVad::default(), 30_000, 320), Vec::new());
}

#[test]
fn clear_forgets_speech_under_way_and_finish_ends_it() {
    let speech = jfk();
    let opening = [silence(1000), speech[..3 * RATE / 2].to_vec()].concat();

    let mut detector = TurnDetector::new(ServerVad::default(), vad().scorer(), 30_000);
    detector.push(&opening).unwrap();
    assert!(detector.in_speech());
    detector.clear();
    assert!(!detector.in_speech());
    assert_eq!(detector.push(&silence(1000)).unwrap(), Vec::new());
    assert_eq!(detector.finish(), None);

    let mut detector = TurnDetector::new(ServerVad::default(), vad().scorer(), 30_000);
    let started = detector.push(&opening).unwrap();
    let [Turn::Started { audio_start_ms }] = started.as_slice() else {
        panic!("{started:?}")
    };
    let Some(Turn::Stopped { audio_end_ms, audio }) = detector.finish() else {
        panic!("finish ends the utterance under way")
    };
    assert_eq!(audio_end_ms as usize, opening.len() * 1000 / RATE);
    assert_eq!(audio.as_slice(), &opening[*audio_start_ms as usize * RATE / 1000..]);
}

/// The onsets of jfk.wav's words after pauses, timed by hand from its waveform, ms.
fn jfk_onsets_ms() -> Vec<usize> {
    let words: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(common::fixture_audio("jfk.words.json")).unwrap()).unwrap();
    words["onsets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| (w["start"].as_f64().unwrap() * 1000.0) as usize)
        .collect()
}

#[test]
fn the_speech_filter_takes_out_long_silences_and_keeps_the_original_times() {
    use sori::vad::filter::{FilterSettings, SpeechOnly};
    let speech = jfk();
    let stream = [
        silence(3000),
        speech.clone(),
        silence(4000),
        speech.clone(),
        silence(1000),
    ]
    .concat();
    let blocks = stream.chunks(16_000).map(|b| Ok::<_, ()>(b.to_vec()));
    let mut filter = SpeechOnly::new(blocks, vad().scorer(), FilterSettings::default());
    let kept: Vec<f32> = filter.by_ref().flat_map(Result::unwrap).collect();
    assert!(filter.take_failure().is_none());
    let timeline = filter.timeline().clone();
    // Both copies are kept whole with their padding; most of the 8 s of silence is not.
    let dropped = stream.len() - kept.len();
    assert!(
        (5 * RATE..8 * RATE).contains(&dropped),
        "{} s dropped",
        dropped as f64 / RATE as f64
    );
    // Speech starts with "and" 0.29 s into the clip; 400 ms of padding are kept before it.
    let first = timeline.original(0.0);
    assert!((2.85..=3.29).contains(&first), "kept from {first} s");
    // Every kept sample is the original one at the time the timeline gives it.
    for (i, sample) in kept.iter().enumerate().step_by(997) {
        let at = (timeline.original(i as f64 / RATE as f64) * RATE as f64).round() as usize;
        assert_eq!(*sample, stream[at], "kept sample {i} is the original's {at}");
    }
    // The second copy's first word is found where it is in the original.
    let second_start = 3.0 + speech.len() as f64 / RATE as f64 + 4.0 + 0.29;
    let kept_second = (0..kept.len())
        .map(|i| timeline.original(i as f64 / RATE as f64))
        .find(|t| *t > 3.0 + 11.5)
        .unwrap();
    assert!(
        (second_start - 0.5..second_start).contains(&kept_second),
        "{kept_second} vs {second_start}"
    );
}
