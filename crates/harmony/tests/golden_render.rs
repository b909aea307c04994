//! Rendering against openai-harmony 0.0.8: testdata/harmony/render.json
//! (conversation JSON as `Conversation.to_json()` wrote it; completion with
//! and without analysis dropping, training, and each message alone).

mod common;

use gptoss_harmony::{
    render_conversation_for_completion, render_conversation_for_training, render_message,
    Conversation, RenderConfig, RenderOptions, Role,
};

#[test]
fn render_matches_openai_harmony() {
    let fx = common::fixture("render.json");
    let cases = common::cases(&fx);
    assert!(cases.len() > 20, "expected the full fixture");
    let drop = RenderConfig::default();
    let keep = RenderConfig {
        auto_drop_analysis: false,
    };
    let mut failures = Vec::new();
    for case in cases {
        let name = case["name"].as_str().expect("name");
        let conv: Conversation = match serde_json::from_value(case["conversation"].clone()) {
            Ok(c) => c,
            Err(e) => {
                failures.push(format!("{name}: conversation JSON rejected: {e}"));
                continue;
            }
        };
        // Our JSON is the official JSON.
        let ours = serde_json::to_value(&conv).expect("serialize");
        if ours != case["conversation"] {
            failures.push(format!(
                "{name}: JSON round trip differs:\n ours {ours}\n ref  {}",
                case["conversation"]
            ));
        }

        let completion = render_conversation_for_completion(&conv, Role::Assistant, &drop);
        if completion.as_ref().ok() != Some(&common::ids(&case["completion"])) {
            failures.push(format!("{name}: completion differs: {completion:?}"));
        }
        let kept = render_conversation_for_completion(&conv, Role::Assistant, &keep);
        if kept.as_ref().ok() != Some(&common::ids(&case["completion_keep_analysis"])) {
            failures.push(format!("{name}: completion_keep_analysis differs"));
        }
        let training = render_conversation_for_training(&conv, &drop);
        match &case["training"] {
            serde_json::Value::Null => {
                if training.is_ok() {
                    failures.push(format!("{name}: training should fail"));
                }
            }
            expected => {
                if training.as_ref().ok() != Some(&common::ids(expected)) {
                    failures.push(format!("{name}: training differs"));
                }
            }
        }
        let expected_msgs = case["messages"].as_array().expect("messages");
        if expected_msgs.len() != conv.messages.len() {
            failures.push(format!("{name}: message count differs"));
            continue;
        }
        for (i, (msg, expected)) in conv.messages.iter().zip(expected_msgs).enumerate() {
            let got = render_message(msg, &RenderOptions::default());
            if got.as_ref().ok() != Some(&common::ids(expected)) {
                failures.push(format!("{name}: message {i} differs"));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} mismatches: {:#?}",
        failures.len(),
        failures
    );
}
