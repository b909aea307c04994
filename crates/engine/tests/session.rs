//! Session tests against the weightless `ScriptedModel`: stop reasons,
//! cancellation, prompt validation, and prefix reuse (what is recomputed is
//! read from the model's own record of forward calls, not from the session's
//! counters alone).

use std::ops::ControlFlow;
use std::sync::atomic::AtomicBool;

use gptoss_engine::{
    EngineError, Sampler, SamplingParams, ScriptedModel, Session, StopConditions, StopReason,
};

const VOCAB: usize = 64;
const STOP: u32 = 63;

fn greedy() -> Sampler {
    Sampler::new(SamplingParams::greedy()).unwrap()
}

fn stop_on(tokens: &[u32], max_tokens: Option<usize>) -> StopConditions {
    StopConditions {
        max_tokens,
        stop_tokens: tokens.to_vec(),
    }
}

fn go(
    session: &mut Session<&ScriptedModel>,
    prompt: &[u32],
    stop: &StopConditions,
) -> gptoss_engine::Generation {
    session
        .generate(prompt, stop, &mut greedy(), None, |_| {
            ControlFlow::Continue(())
        })
        .unwrap()
}

#[test]
fn stops_on_a_stop_token_and_decodes_one_token_at_a_time() {
    let model = ScriptedModel::new(VOCAB, 100, vec![3, 4, STOP, 5]);
    let mut session = Session::new(&model, 100).unwrap();
    let g = go(&mut session, &[1, 2], &stop_on(&[STOP], None));
    assert_eq!(g.tokens, vec![3, 4, STOP]);
    assert_eq!(g.stop_reason, StopReason::StopToken(STOP));
    // prefill of 2 in one call, then one call per generated token except the stop token
    assert_eq!(model.forward_calls(), vec![2, 1, 1]);
    assert_eq!(session.cached_tokens(), &[1, 2, 3, 4]);
    assert_eq!(g.usage.completion_tokens, 3);
}

#[test]
fn stops_at_max_tokens() {
    let model = ScriptedModel::new(VOCAB, 100, vec![3, 4, 5, 6, 7]);
    let mut session = Session::new(&model, 100).unwrap();
    let g = go(&mut session, &[1, 2], &stop_on(&[STOP], Some(2)));
    assert_eq!(g.tokens, vec![3, 4]);
    assert_eq!(g.stop_reason, StopReason::MaxTokens);
    assert_eq!(model.forward_calls(), vec![2, 1]);

    let g = go(&mut session, &[1, 2], &stop_on(&[], Some(0)));
    assert!(g.tokens.is_empty());
    assert_eq!(g.stop_reason, StopReason::MaxTokens);
}

#[test]
fn stops_when_the_context_is_full() {
    let model = ScriptedModel::new(VOCAB, 100, vec![3, 4, 5, 6, 7, 8, 9]);
    let mut session = Session::new(&model, 5).unwrap();
    let g = go(&mut session, &[1, 2, 10], &stop_on(&[STOP], None));
    // positions 3 and 4 are filled by the first two generated tokens; the
    // third is sampled from position 4's logits and needs no slot.
    assert_eq!(g.tokens, vec![3, 4, 5]);
    assert_eq!(g.stop_reason, StopReason::ContextFull);
    assert_eq!(session.cached_tokens().len(), 5);
}

#[test]
fn cancel_flag_and_callback_stop_generation() {
    let model = ScriptedModel::new(VOCAB, 100, vec![3, 4, 5, 6, 7]);
    let mut session = Session::new(&model, 100).unwrap();
    let flag = AtomicBool::new(true);
    let g = session
        .generate(
            &[1, 2],
            &stop_on(&[], None),
            &mut greedy(),
            Some(&flag),
            |_| ControlFlow::Continue(()),
        )
        .unwrap();
    assert_eq!(g.stop_reason, StopReason::Cancelled);
    assert!(g.tokens.is_empty());

    let flag = AtomicBool::new(false);
    let mut seen = 0;
    let g = session
        .generate(
            &[1, 2],
            &stop_on(&[], None),
            &mut greedy(),
            Some(&flag),
            |_| {
                seen += 1;
                if seen == 2 {
                    // a Ctrl-C handler would set the flag from another thread
                    flag.store(true, std::sync::atomic::Ordering::Relaxed);
                }
                ControlFlow::Continue(())
            },
        )
        .unwrap();
    assert_eq!(g.stop_reason, StopReason::Cancelled);
    assert_eq!(g.tokens, vec![3, 4]);

    let g = session
        .generate(&[1, 2], &stop_on(&[], None), &mut greedy(), None, |t| {
            if t == 5 {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        })
        .unwrap();
    assert_eq!(g.stop_reason, StopReason::Cancelled);
    assert_eq!(g.tokens, vec![3, 4, 5]);
}

#[test]
fn bad_prompts_are_refused_with_the_numbers() {
    let model = ScriptedModel::new(VOCAB, 100, vec![3]);
    let mut session = Session::new(&model, 8).unwrap();
    let long: Vec<u32> = (0..9).collect();
    let err = session.generate(&long, &stop_on(&[], None), &mut greedy(), None, |_| {
        ControlFlow::Continue(())
    });
    match err {
        Err(
            e @ EngineError::PromptTooLong {
                prompt_tokens: 9,
                max_context: 8,
            },
        ) => {
            let msg = e.to_string();
            assert!(msg.contains('9') && msg.contains('8'), "{msg}");
        }
        other => panic!("expected PromptTooLong, got {other:?}"),
    }
    assert!(matches!(
        session.prefill(&[], None),
        Err(EngineError::EmptyPrompt)
    ));
    assert!(matches!(
        session.prefill(&[1, 64], None),
        Err(EngineError::InvalidToken {
            token: 64,
            vocab_size: 64
        })
    ));
    assert!(matches!(
        Session::new(&model, 101),
        Err(EngineError::ContextTooLarge {
            requested: 101,
            max_context: 100
        })
    ));
    // nothing was run for the refused requests
    assert!(model.forward_calls().is_empty());
}

#[test]
fn second_turn_recomputes_only_the_new_tokens() {
    let model = ScriptedModel::new(VOCAB, 1000, vec![20, 21, 22, STOP]);
    let mut session = Session::new(&model, 1000).unwrap();
    let turn1: Vec<u32> = (1..=12).collect();
    let g1 = go(&mut session, &turn1, &stop_on(&[STOP], None));
    assert_eq!(g1.usage.reused_tokens, 0);
    assert_eq!(g1.usage.computed_tokens, 12);

    // Next prompt: the history with the stop token replaced by an end
    // token (as harmony stores a finished turn) plus a new user message.
    let mut turn2 = turn1.clone();
    turn2.extend_from_slice(&g1.tokens[..g1.tokens.len() - 1]);
    let new_part = [30, 31, 32, 33, 34];
    turn2.extend_from_slice(&new_part);
    model.clear_calls();
    let g2 = go(&mut session, &turn2, &stop_on(&[STOP], None));
    assert_eq!(g2.usage.prompt_tokens, turn2.len());
    assert_eq!(g2.usage.reused_tokens, turn1.len() + g1.tokens.len() - 1);
    assert_eq!(g2.usage.computed_tokens, new_part.len());
    // the model really ran only the new tokens in prefill
    assert_eq!(model.forward_calls()[0], new_part.len());
    assert_eq!(g2.tokens, vec![20, 21, 22, STOP]);

    let totals = session.totals();
    assert_eq!(totals.requests, 2);
    assert_eq!(totals.computed_tokens, 12 + new_part.len());
    assert_eq!(totals.reused_tokens, g2.usage.reused_tokens);
}

#[test]
fn identical_prompt_recomputes_only_its_last_token() {
    let model = ScriptedModel::new(VOCAB, 100, vec![20, STOP]);
    let mut session = Session::new(&model, 100).unwrap();
    let prompt: Vec<u32> = (1..=10).collect();
    let a = go(&mut session, &prompt, &stop_on(&[STOP], None));
    model.clear_calls();
    let b = go(&mut session, &prompt, &stop_on(&[STOP], None));
    assert_eq!(b.usage.reused_tokens, 9);
    assert_eq!(b.usage.computed_tokens, 1);
    assert_eq!(model.forward_calls()[0], 1);
    assert_eq!(a.tokens, b.tokens);
}

#[test]
fn diverging_prompt_rolls_back_to_the_common_prefix() {
    let model = ScriptedModel::new(VOCAB, 100, vec![20, 21, 22, 23, STOP]);
    let mut session = Session::new(&model, 100).unwrap();
    let prompt: Vec<u32> = (1..=10).collect();
    go(&mut session, &prompt, &stop_on(&[STOP], None));
    let mut other = prompt[..6].to_vec();
    other.extend_from_slice(&[40, 41]);
    let g = go(&mut session, &other, &stop_on(&[STOP], None));
    assert_eq!(g.usage.reused_tokens, 6);
    assert_eq!(g.usage.computed_tokens, 2);
    assert_eq!(&session.cached_tokens()[..8], &other[..]);
}

#[test]
fn sliding_window_rollback_keeps_only_what_a_snapshot_allows() {
    // Window 4: after 10+ positions the ring has wrapped, so a rollback can
    // only land on a snapshot (marked after each prefill).
    let model =
        ScriptedModel::new(VOCAB, 100, vec![20, 21, 22, 23, 24, STOP]).with_sliding_window(4);
    let mut session = Session::new(&model, 100).unwrap();
    let prompt: Vec<u32> = (1..=10).collect();
    let g1 = go(&mut session, &prompt, &stop_on(&[STOP], None));
    assert_eq!(g1.tokens.len(), 6);

    // Diverges inside the generated part (at position 12): back to the
    // snapshot at the end of the prompt (10), not to 12.
    let mut p2 = prompt.clone();
    p2.extend_from_slice(&[20, 21, 50, 51]);
    let g2 = go(&mut session, &p2, &stop_on(&[STOP], None));
    assert_eq!(g2.usage.reused_tokens, 10);
    assert_eq!(g2.usage.computed_tokens, 4);

    // Diverges at position 5, before any snapshot: recompute everything.
    let mut p3 = prompt[..5].to_vec();
    p3.extend_from_slice(&[50, 51]);
    let g3 = go(&mut session, &p3, &stop_on(&[STOP], None));
    assert_eq!(g3.usage.reused_tokens, 0);
    assert_eq!(g3.usage.computed_tokens, 7);
    assert_eq!(g3.tokens, g1.tokens);
}

#[test]
fn prefill_is_chunked() {
    let model = ScriptedModel::new(VOCAB, 100, vec![20, STOP]);
    let mut session = Session::new(&model, 100).unwrap();
    session.set_prefill_chunk(4);
    let prompt: Vec<u32> = (1..=10).collect();
    let g = go(&mut session, &prompt, &stop_on(&[STOP], None));
    assert_eq!(model.forward_calls(), vec![4, 4, 2, 1]);
    assert_eq!(g.tokens, vec![20, STOP]);
}

#[test]
fn reset_forgets_the_cache() {
    let model = ScriptedModel::new(VOCAB, 100, vec![20, STOP]);
    let mut session = Session::new(&model, 100).unwrap();
    let prompt: Vec<u32> = (1..=10).collect();
    go(&mut session, &prompt, &stop_on(&[STOP], None));
    session.reset();
    let g = go(&mut session, &prompt, &stop_on(&[STOP], None));
    assert_eq!(g.usage.reused_tokens, 0);
    assert_eq!(g.usage.computed_tokens, 10);
}

#[test]
fn seeded_sampling_through_the_session_is_reproducible() {
    let model = ScriptedModel::new(VOCAB, 1000, vec![20, 21, 22, 23]);
    let run = |seed| {
        let mut session = Session::new(&model, 1000).unwrap();
        let mut sampler = Sampler::new(SamplingParams {
            temperature: 3.0,
            seed: Some(seed),
            ..Default::default()
        })
        .unwrap();
        session
            .generate(
                &[1, 2, 3],
                &stop_on(&[], Some(50)),
                &mut sampler,
                None,
                |_| ControlFlow::Continue(()),
            )
            .unwrap()
            .tokens
    };
    assert_eq!(run(1), run(1));
    assert_ne!(run(1), run(2));
}

#[test]
fn snapshot_points_let_a_new_conversation_reuse_the_system_prefix() {
    let model = ScriptedModel::new(VOCAB, 100, vec![20, 21, 22, STOP]).with_sliding_window(4);
    let system: Vec<u32> = (1..=8).collect();
    let mut first = system.clone();
    first.extend_from_slice(&[30, 31, 32]);
    let mut second = system.clone();
    second.extend_from_slice(&[40, 41]);

    // Without a snapshot at the end of the system prefix: nothing is reused.
    let mut session = Session::new(&model, 100).unwrap();
    go(&mut session, &first, &stop_on(&[STOP], None));
    let g = go(&mut session, &second, &stop_on(&[STOP], None));
    assert_eq!(g.usage.reused_tokens, 0);

    // With one: the system prefix is reused, and the prefill was cut there.
    let mut session = Session::new(&model, 100).unwrap();
    model.clear_calls();
    session.set_snapshot_points(&[system.len()]);
    go(&mut session, &first, &stop_on(&[STOP], None));
    assert_eq!(&model.forward_calls()[..2], &[system.len(), 3]);
    session.set_snapshot_points(&[system.len()]);
    let g = go(&mut session, &second, &stop_on(&[STOP], None));
    assert_eq!(g.usage.reused_tokens, system.len());
    assert_eq!(g.usage.computed_tokens, 2);
}
