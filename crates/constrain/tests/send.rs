//! The constraint moves to the engine thread: it must be `Send`.
#[test]
fn types_are_send() {
    fn is_send<T: Send>() {}
    is_send::<gptoss_constrain::HarmonyConstraint>();
    is_send::<gptoss_constrain::Grammar>();
    is_send::<gptoss_constrain::Matcher>();
}
