//! Recorded SSE streams (tests/fixtures/*.sse, written from the providers' documented shapes) and
//! a parser that turns one into the events a client would store.

#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::panic)]

use std::path::Path;

/// The fixtures: name and bytes. OpenAI chat completions (content, a tool call, a usage chunk with
/// reasoning tokens, `[DONE]`), Anthropic messages (thinking with a signature, text, a tool use,
/// `ping`, usage in `message_delta`), OpenAI Responses (reasoning summary, output text, usage).
pub fn fixtures() -> Vec<(&'static str, Vec<u8>)> {
    [
        "openai_chat_completions.sse",
        "anthropic_messages.sse",
        "openai_responses.sse",
    ]
    .into_iter()
    .map(|name| {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures")
            .join(name);
        (name, std::fs::read(path).unwrap())
    })
    .collect()
}

/// The events of an SSE text: `event:` and `data:` lines, one blank line after each event (the
/// fixtures' form; LF line ends).
pub fn parse(bytes: &[u8]) -> Vec<sealcache::SseEvent> {
    let text = std::str::from_utf8(bytes).unwrap();
    assert!(text.ends_with("\n\n"), "a fixture ends with an empty line");
    text[..text.len() - 2]
        .split("\n\n")
        .map(|block| {
            let mut name = None;
            let mut data: Vec<&str> = Vec::new();
            for line in block.split('\n') {
                if let Some(n) = line.strip_prefix("event: ") {
                    name = Some(n.to_owned());
                } else if let Some(d) = line.strip_prefix("data: ") {
                    data.push(d);
                } else {
                    panic!("unexpected line {line:?}");
                }
            }
            sealcache::SseEvent {
                event: name,
                data: data.join("\n"),
            }
        })
        .collect()
}
