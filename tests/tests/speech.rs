//! The embedded speech engines, through the worker `oratio up` runs: what a caller says
//! (spoken by Debian's `flite`, a voice other than the agent's) is recognised at 16 kHz
//! and through telephony's 8 kHz μ-law, and what the agent's voice says is recognised
//! back. Word error rates are over all the phrases together.

use std::path::PathBuf;

use oratio_core::speech::{Audio, Recognizer, Synthesizer, VoiceSettings, word_error_rate};
use oratio_local::speech::{LocalSpeech, VOICE, resample, worker};
use oratio_tests::speech::{caller_says, python};

/// Callers, in their own words.
const SAID: &[&str] = &[
    "Hi, I'd like to book a cleaning for next Tuesday morning if you have anything.",
    "How much does a filling cost without insurance?",
    "My name is Maria Lopez and my phone number is five five five, one two three four.",
    "Do you have parking near the clinic or should I take the bus?",
    "I need to cancel my appointment on Friday, something came up at work.",
    "Can I speak to a real person please, this is getting complicated.",
    "Are you open on Saturdays, and until what time?",
    "I have a terrible toothache and my jaw is swollen since last night.",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callers_are_recognised_on_both_lines_and_the_agents_voice_is_understood() {
    let spec = worker(2);
    let python = python();
    assert!(spec.available(&python).await, "{} lacks the speech packages: run scripts/test", python.display());
    let log = tempfile::NamedTempFile::new().expect("a log file");
    let engine = spec.start(python, log.path().to_owned()).await.expect("the speech worker starts");
    let speech = LocalSpeech::new(engine.origin());
    let joe = VoiceSettings { voice: VOICE.into(), ..VoiceSettings::default() };

    let (mut wideband, mut telephone, mut own) = (Vec::new(), Vec::new(), Vec::new());
    for said in SAID {
        let caller = caller_says(said);
        wideband.push(speech.transcribe(&caller).await.expect("recognised"));
        // Through a phone line: 8 kHz, μ-law, and back.
        let line = Audio::from_mulaw(&resample(&caller, 8_000).expect("8 kHz").to_mulaw());
        telephone.push(speech.transcribe(&line).await.expect("recognised"));
        let spoken = speech.synthesize(said, &joe).await.expect("synthesised");
        assert!(spoken.seconds() > 1.0, "{said}: {} s", spoken.seconds());
        own.push(speech.transcribe(&spoken).await.expect("recognised"));
    }
    let rate = |heard: &[String]| word_error_rate(&SAID.join(" "), &heard.join(" "));
    let (wide, phone, back) = (rate(&wideband), rate(&telephone), rate(&own));
    eprintln!(
        "word error rate: {:.1} % at 16 kHz, {:.1} % at 8 kHz μ-law, {:.1} % on the agent's voice",
        wide * 100.0,
        phone * 100.0,
        back * 100.0
    );
    assert!(wide <= 0.10, "16 kHz: {wide}: {wideband:?}");
    assert!(phone <= 0.15, "8 kHz: {phone}: {telephone:?}");
    assert!(back <= 0.10, "the agent's voice: {back}: {own:?}");

    // The voice's pace is a setting.
    let text = "Your appointment is confirmed for Tuesday at nine.";
    let normal = speech.synthesize(text, &joe).await.expect("synthesised");
    let slow =
        speech.synthesize(text, &VoiceSettings { speaking_rate: 0.7, ..joe.clone() }).await.expect("synthesised");
    assert!(slow.seconds() > normal.seconds() * 1.2, "{} vs {}", slow.seconds(), normal.seconds());
    let unknown = speech.synthesize(text, &VoiceSettings { voice: "nobody".into(), ..joe.clone() }).await;
    assert!(matches!(unknown, Err(oratio_core::speech::SpeechError::Invalid(_))), "{unknown:?}");
}

#[test]
fn scripts_test_installs_the_packages_the_worker_names() {
    let script = std::fs::read_to_string(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scripts/test"))
        .expect("scripts/test");
    for package in oratio_local::speech::PACKAGES {
        assert!(script.contains(&format!("'{package}'")), "scripts/test does not install {package}");
    }
}

#[test]
fn the_endpointer_ends_a_turn_on_a_pause_not_between_words() {
    use oratio_core::endpointing::{Endpoint, Endpointer, EndpointingSettings, StopReason};
    let quiet = |seconds: f64| vec![0i16; (16_000.0 * seconds) as usize];
    // flite's own leading and trailing silence trimmed, so that the pauses are the test's.
    let spoken = |text: &str| {
        let samples = resample(&caller_says(text), 16_000).expect("16 kHz").samples;
        let loud = |s: &i16| s.unsigned_abs() > 300;
        let (from, to) = (samples.iter().position(loud).unwrap_or(0), samples.iter().rposition(loud).unwrap_or(0));
        samples[from..=to].to_vec()
    };
    let first = spoken("I'd like to move my appointment to Thursday.");
    let second = spoken("Preferably in the afternoon.");
    let turns = |stream: Vec<i16>| {
        let mut endpointer = Endpointer::new(EndpointingSettings::default());
        let noticed: Vec<Endpoint> = stream.chunks(320).flat_map(|frame| endpointer.push(frame)).collect();
        let starts = noticed.iter().filter(|e| matches!(e, Endpoint::SpeechStarted { .. })).count();
        let stops =
            noticed.iter().filter(|e| matches!(e, Endpoint::SpeechStopped { reason: StopReason::Silence, .. })).count();
        assert_eq!(starts, stops, "{noticed:?}");
        stops
    };
    // A breath between two sentences is one turn; a real pause ends it.
    assert_eq!(turns([quiet(0.5), first.clone(), quiet(0.25), second.clone(), quiet(1.5)].concat()), 1);
    assert_eq!(turns([quiet(0.5), first, quiet(1.5), second, quiet(1.5)].concat()), 2);
}
