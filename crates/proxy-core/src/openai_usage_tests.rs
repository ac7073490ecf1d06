use super::*;
use crate::route::BodyFormat;
use crate::stream_meta::MetaReader;

const ASK: &str = r#""stream_options":{"include_usage":true}"#;

#[test]
fn request_usage_rewrites_only_streams_that_did_not_ask() {
    let appended = |s: &str| -> Option<String> {
        let close = s.rfind('}').unwrap_or(0);
        Some(format!("{},{ASK}{}", &s[..close], &s[close..]))
    };
    // Numbers, escapes and spacing must survive byte for byte.
    let odd = r#"{"temperature":1.0e0,"stream":true,"messages":[{"content":"caf\u00e9 \"q\""}],"max_tokens":100000000000000000000}"#;
    let nested = r#"{"metadata":{"stream_options":null},"stream":true}"#;
    let table: &[(&str, Option<String>)] = &[
        (
            r#"{"model":"m","stream":true,"messages":[]}"#,
            appended(r#"{"model":"m","stream":true,"messages":[]}"#),
        ),
        (
            "{ \"stream\" : true }\r\n",
            Some(format!("{{ \"stream\" : true ,{ASK}}}\r\n")),
        ),
        (odd, appended(odd)),
        (nested, appended(nested)),
        (
            r#"{"stream":true,"stream_options":{}}"#,
            Some(format!("{{\"stream\":true,{ASK}}}")),
        ),
        (
            r#"{"stream":true,"stream_options":{ }}"#,
            Some(r#"{"stream":true,"stream_options":{"include_usage":true }}"#.into()),
        ),
        (
            r#"{"stream":true,"stream_options":{"x":[1,{"y":2}]}}"#,
            Some(r#"{"stream":true,"stream_options":{"include_usage":true,"x":[1,{"y":2}]}}"#.into()),
        ),
        (
            r#"{"stream":true,"stream_options":{"x":1,"include_usage":false}}"#,
            Some(r#"{"stream":true,"stream_options":{"x":1,"include_usage":true}}"#.into()),
        ),
        (
            r#"{"stream_options":{"include_usage" : null },"stream":true}"#,
            Some(r#"{"stream_options":{"include_usage" : true },"stream":true}"#.into()),
        ),
        (
            r#"{"stream":true,"stream_options": null}"#,
            Some(r#"{"stream":true,"stream_options": {"include_usage":true}}"#.into()),
        ),
        // Nothing to do.
        (r#"{"stream":true,"stream_options":{"include_usage":true}}"#, None),
        (r#"{"stream":false}"#, None),
        (r#"{"model":"m","messages":[]}"#, None),
        (r#"{"stream":null}"#, None),
        // Left for upstream to reject.
        (r#"{"stream":"true"}"#, None),
        (
            r#"{"stream":true,"stream_options":{"include_usage":"yes"}}"#,
            None,
        ),
        (r#"{"stream":true,"stream_options":"x"}"#, None),
        (r#"{"stream":true,"stream_options":[]}"#, None),
        (r#"{"stream":true,"stream":true}"#, None),
        // Not a JSON object.
        ("[true]", None),
        (r#""stream""#, None),
        ("", None),
        (r#"{"stream":true"#, None),
        (r#"{"stream":true} x"#, None),
    ];
    for (body, expected) in table {
        let got = request_usage(body.as_bytes());
        let got = got.as_deref().map(|b| String::from_utf8_lossy(b).into_owned());
        assert_eq!(&got, expected, "body: {body}");
        if let Some(got) = got {
            let v: serde_json::Value = serde_json::from_str(&got).expect("rewrite is JSON");
            assert_eq!(v["stream_options"]["include_usage"], true, "{got}");
        }
    }
}

const CONTENT: &str = r#"{"id":"c","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"role":"assistant","content":"Hi"},"finish_reason":null}]}"#;
const STOP: &str = r#"{"id":"c","object":"chat.completion.chunk","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}"#;
const USAGE: &str = r#"{"id":"c","object":"chat.completion.chunk","choices":[],"usage":{"prompt_tokens":12,"completion_tokens":7,"total_tokens":19,"prompt_tokens_details":{"cached_tokens":3},"completion_tokens_details":{"reasoning_tokens":2}}}"#;

/// An SSE stream of `data:` events ending with `sep`.
fn sse(events: &[&str], sep: &str) -> String {
    events.iter().map(|e| format!("data: {e}{sep}")).collect()
}

/// Runs `input` through a filter split every way a network could split it: each chunk
/// size from 1 byte to the whole, and each single cut point (for long inputs, a sample
/// of both, to keep the test quick).
fn check(input: &str, expected: &str) {
    let bytes = input.as_bytes();
    let long = bytes.len() > 4096;
    let max_size = if long { 16 } else { bytes.len() };
    let mut splits: Vec<Vec<&[u8]>> = (1..=max_size)
        .chain([bytes.len().max(1)])
        .map(|size| bytes.chunks(size).collect())
        .collect();
    let cuts = (0..=bytes.len()).step_by(if long { 97 } else { 1 });
    splits.extend(cuts.map(|cut| vec![&bytes[..cut], &bytes[cut..]]));
    for pieces in splits {
        let mut filter = UsageChunkFilter::new();
        let mut out = Vec::new();
        for piece in &pieces {
            out.extend_from_slice(&filter.push(piece));
            assert!(filter.held.len() <= MAX_HELD);
        }
        out.extend_from_slice(&filter.finish());
        let first = pieces.first().map_or(0, |p| p.len());
        let split = format!("{} pieces, the first {first} bytes", pieces.len());
        assert_eq!(String::from_utf8_lossy(&out), expected, "{split}");
    }
}

#[test]
fn filter_removes_only_the_usage_only_chunk() {
    let done = "[DONE]";
    let multi_line_usage = "data: {\"choices\":[],\ndata: \"usage\":{\"total_tokens\":1}}\n\n";
    let with_fields = format!("event: message\nid: 7\ndata: {USAGE}\n\n");
    let error = r#"{"error":{"code":500,"message":"x","status":"INTERNAL"}}"#;
    let usage_on_content =
        r#"{"choices":[{"index":0,"delta":{},"finish_reason":"stop"}],"usage":{"total_tokens":19}}"#;
    let table: Vec<(String, String)> = vec![
        (
            sse(&[CONTENT, STOP, USAGE, done], "\n\n"),
            sse(&[CONTENT, STOP, done], "\n\n"),
        ),
        (
            sse(&[CONTENT, STOP, USAGE, done], "\r\n\r\n"),
            sse(&[CONTENT, STOP, done], "\r\n\r\n"),
        ),
        (
            sse(&[CONTENT, USAGE, done], "\r\r"),
            sse(&[CONTENT, done], "\r\r"),
        ),
        (
            sse(&[CONTENT, USAGE, done], "\n\r\n"),
            sse(&[CONTENT, done], "\n\r\n"),
        ),
        (
            format!("data: {CONTENT}\n\n{multi_line_usage}data: [DONE]\n\n"),
            sse(&[CONTENT, done], "\n\n"),
        ),
        (format!("{with_fields}data: [DONE]\n\n"), sse(&[done], "\n\n")),
        // Unterminated at the end: removed if usage, else passed as it came.
        (
            format!("data: {CONTENT}\n\ndata: {USAGE}"),
            sse(&[CONTENT], "\n\n"),
        ),
        (
            format!("data: {CONTENT}\n\ndata: {USAGE}\r\n\r"),
            sse(&[CONTENT], "\n\n"),
        ),
        (
            format!("data: {CONTENT}\n\ndata: [DONE]\n"),
            format!("data: {CONTENT}\n\ndata: [DONE]\n"),
        ),
        // Everything else passes unchanged.
        (
            sse(&[CONTENT, STOP, done], "\n\n"),
            sse(&[CONTENT, STOP, done], "\n\n"),
        ),
        (sse(&[CONTENT, error], "\n\n"), sse(&[CONTENT, error], "\n\n")),
        (
            sse(&[usage_on_content, done], "\n\n"),
            sse(&[usage_on_content, done], "\n\n"),
        ),
        (
            sse(&[r#"{"choices":[],"usage":null}"#], "\n\n"),
            sse(&[r#"{"choices":[],"usage":null}"#], "\n\n"),
        ),
        (
            sse(&[r#"{"usage":{"total_tokens":1}}"#], "\n\n"),
            sse(&[r#"{"usage":{"total_tokens":1}}"#], "\n\n"),
        ),
        (
            sse(&[r#"[{"choices":[],"usage":{}}]"#], "\n\n"),
            sse(&[r#"[{"choices":[],"usage":{}}]"#], "\n\n"),
        ),
        (
            ": keep-alive\n\n\n\ndata: x\n\n".into(),
            ": keep-alive\n\n\n\ndata: x\n\n".into(),
        ),
        (format!("datum: {USAGE}\n\n"), format!("datum: {USAGE}\n\n")),
        (String::new(), String::new()),
    ];
    for (input, expected) in &table {
        check(input, expected);
    }
}

#[test]
fn filter_passes_events_on_as_soon_as_they_are_complete() {
    let mut filter = UsageChunkFilter::new();
    let first = format!("data: {CONTENT}\n\n");
    assert_eq!(filter.push(first.as_bytes()), first.as_bytes());
    assert_eq!(filter.push(format!("data: {USAGE}\n\n").as_bytes()), "");
    assert_eq!(filter.push(b"data: [DONE]\n\n"), "data: [DONE]\n\n");
    assert_eq!(filter.finish(), "");
}

#[test]
fn filter_streams_long_events_without_holding_them() {
    let text = "x".repeat(3 * MAX_HELD);
    let big = format!(r#"{{"choices":[{{"index":0,"delta":{{"content":"{text}"}}}}]}}"#);
    let input = sse(&[&big, USAGE, "[DONE]"], "\n\n");
    let mut filter = UsageChunkFilter::new();
    let half = MAX_HELD * 2;
    // Past the hold limit, a long event's bytes go out before the event ends.
    let early = filter.push(&input.as_bytes()[..half]);
    assert_eq!(early, input.as_bytes()[..half]);
    let rest = filter.push(&input.as_bytes()[half..]);
    assert_eq!([early, rest].concat(), sse(&[&big, "[DONE]"], "\n\n").as_bytes());
    check(&input, &sse(&[&big, "[DONE]"], "\n\n"));
    // A usage-only chunk is never that long; one that is would pass (harmlessly).
    let padded = USAGE.replace(r#""id":"c""#, &format!(r#""id":"{text}""#));
    check(&sse(&[&padded], "\n\n"), &sse(&[&padded], "\n\n"));
}

/// The platforms read usage from upstream's bytes, before the filter drops the chunk.
#[test]
fn meta_reader_before_filter_logs_usage_the_client_does_not_see() {
    let upstream = sse(&[CONTENT, STOP, USAGE, "[DONE]"], "\r\n\r\n");
    for size in 1..=upstream.len() {
        let mut reader = MetaReader::new(BodyFormat::Sse);
        let mut filter = UsageChunkFilter::new();
        let mut client = Vec::new();
        for piece in upstream.as_bytes().chunks(size) {
            reader.feed(piece);
            client.extend_from_slice(&filter.push(piece));
        }
        client.extend_from_slice(&filter.finish());
        let usage = reader.finish().usage;
        assert_eq!(
            (usage.prompt_tokens, usage.candidates_tokens, usage.total_tokens),
            (Some(12), Some(7), Some(19))
        );
        assert_eq!((usage.thoughts_tokens, usage.cached_tokens), (Some(2), Some(3)));
        assert_eq!(client, sse(&[CONTENT, STOP, "[DONE]"], "\r\n\r\n").as_bytes());
    }
}
