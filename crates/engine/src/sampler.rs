//! Turning one row of logits into one token id: greedy, temperature, top-k,
//! top-p (nucleus) and min-p, drawn with a seedable ChaCha12 generator so the
//! same seed and the same logits give the same tokens on every platform.
//!
//! The filters run in the order Hugging Face `generate` applies them:
//! temperature, then top-k, then top-p over the top-k survivors renormalised,
//! then min-p. Ties are broken towards the lower token id, so the result is a
//! function of the logits alone. This module owns no model state and no text.
//!
//! Defaults follow OpenAI's recommendation for gpt-oss: temperature 1.0,
//! top-p 1.0, no top-k, no min-p.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha12Rng;

use crate::EngineError;

/// How many of the most likely tokens are selected before trying to find the
/// nucleus among them; only if they hold less than `top_p` of the mass is the
/// whole vocabulary sorted. Keeps a 200k-entry sort off the common path.
const NUCLEUS_PREFILTER: usize = 256;

/// Sampling settings for one request.
#[derive(Debug, Clone, PartialEq)]
pub struct SamplingParams {
    /// Softmax temperature; `0.0` means greedy (argmax).
    pub temperature: f32,
    /// Nucleus mass in `(0, 1]`; `1.0` disables the filter.
    pub top_p: f32,
    /// Keep only the `top_k` most likely tokens; `0` disables the filter.
    pub top_k: usize,
    /// Drop tokens whose probability is below `min_p` times the most likely
    /// token's, in `[0, 1]`; `0.0` disables the filter.
    pub min_p: f32,
    /// Seed of the random generator; `None` seeds from the OS.
    pub seed: Option<u64>,
}

impl Default for SamplingParams {
    /// OpenAI's recommended sampling for gpt-oss (README, "Recommended
    /// Sampling Parameters"): temperature 1.0, top_p 1.0.
    fn default() -> Self {
        SamplingParams {
            temperature: 1.0,
            top_p: 1.0,
            top_k: 0,
            min_p: 0.0,
            seed: None,
        }
    }
}

impl SamplingParams {
    /// Deterministic argmax decoding.
    pub fn greedy() -> Self {
        SamplingParams {
            temperature: 0.0,
            ..SamplingParams::default()
        }
    }

    /// True when the settings always pick the most likely token.
    pub fn is_greedy(&self) -> bool {
        self.temperature == 0.0 || self.top_k == 1
    }

    /// Check every field's range.
    pub fn validate(&self) -> Result<(), EngineError> {
        if !(self.temperature.is_finite() && self.temperature >= 0.0) {
            return Err(EngineError::InvalidSampling {
                name: "temperature",
                value: self.temperature.to_string(),
                expected: "a finite number >= 0 (0 means greedy)",
            });
        }
        if !(self.top_p > 0.0 && self.top_p <= 1.0) {
            return Err(EngineError::InvalidSampling {
                name: "top_p",
                value: self.top_p.to_string(),
                expected: "a number in (0, 1]",
            });
        }
        if !(self.min_p >= 0.0 && self.min_p <= 1.0) {
            return Err(EngineError::InvalidSampling {
                name: "min_p",
                value: self.min_p.to_string(),
                expected: "a number in [0, 1]",
            });
        }
        Ok(())
    }
}

/// One entry of a truncated distribution.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Candidate {
    pub token: u32,
    /// Probability after truncation and renormalisation.
    pub prob: f32,
}

/// A sampler for one sequence. Its buffers are sized to the vocabulary once
/// and reused for every token, so sampling does not allocate per token.
#[derive(Debug)]
pub struct Sampler {
    params: SamplingParams,
    rng: ChaCha12Rng,
    // f32 [vocab]: unnormalised probabilities exp((logit - max) / T)
    weights: Vec<f32>,
    // the surviving tokens, most likely first, with unnormalised weights
    candidates: Vec<Candidate>,
}

impl Sampler {
    /// A sampler with validated settings.
    pub fn new(params: SamplingParams) -> Result<Sampler, EngineError> {
        params.validate()?;
        let rng = match params.seed {
            Some(seed) => ChaCha12Rng::seed_from_u64(seed),
            None => ChaCha12Rng::from_rng(&mut rand::rng()),
        };
        Ok(Sampler {
            params,
            rng,
            weights: Vec::new(),
            candidates: Vec::new(),
        })
    }

    /// The settings this sampler was built with.
    pub fn params(&self) -> &SamplingParams {
        &self.params
    }

    /// Draw one token from `logits` (f32 `[vocab]`).
    pub fn sample(&mut self, logits: &[f32]) -> Result<u32, EngineError> {
        if self.params.is_greedy() {
            return argmax(logits).ok_or(EngineError::NoFiniteLogit {
                vocab_size: logits.len(),
            });
        }
        let total = self.fill_weights(logits)?;
        if !self.truncates() {
            // No filter: draw straight from the weights, no sort needed.
            let target = self.rng.random::<f64>() * total;
            let mut acc = 0.0f64;
            let mut last_positive = 0u32;
            for (token, &w) in self.weights.iter().enumerate() {
                if w > 0.0 {
                    acc += f64::from(w);
                    last_positive = token as u32;
                    if acc > target {
                        return Ok(token as u32);
                    }
                }
            }
            // Rounding left `target` just above the sum: take the last token with mass.
            return Ok(last_positive);
        }
        let total = self.truncate();
        let target = self.rng.random::<f64>() * total;
        let mut acc = 0.0f64;
        for c in &self.candidates {
            acc += f64::from(c.prob);
            if acc > target {
                return Ok(c.token);
            }
        }
        self.candidates
            .last()
            .map(|c| c.token)
            .ok_or(EngineError::NoFiniteLogit {
                vocab_size: logits.len(),
            })
    }

    /// The distribution `sample` draws from: surviving tokens, most likely
    /// first, probabilities renormalised to sum to 1. Greedy settings give
    /// the single argmax token with probability 1.
    pub fn distribution(&mut self, logits: &[f32]) -> Result<&[Candidate], EngineError> {
        if self.params.is_greedy() {
            let token = argmax(logits).ok_or(EngineError::NoFiniteLogit {
                vocab_size: logits.len(),
            })?;
            self.candidates.clear();
            self.candidates.push(Candidate { token, prob: 1.0 });
            return Ok(&self.candidates);
        }
        self.fill_weights(logits)?;
        let total = self.truncate_sorted(true);
        for c in &mut self.candidates {
            c.prob = (f64::from(c.prob) / total) as f32;
        }
        Ok(&self.candidates)
    }

    fn truncates(&self) -> bool {
        let p = &self.params;
        (p.top_k > 0 && p.top_k < self.weights.len()) || p.top_p < 1.0 || p.min_p > 0.0
    }

    /// Fill `weights` with exp((logit - max) / T), NaN and -inf as 0.
    /// Returns their sum.
    fn fill_weights(&mut self, logits: &[f32]) -> Result<f64, EngineError> {
        let max = logits
            .iter()
            .copied()
            .filter(|l| l.is_finite())
            .fold(f32::NEG_INFINITY, f32::max);
        if max == f32::NEG_INFINITY {
            return Err(EngineError::NoFiniteLogit {
                vocab_size: logits.len(),
            });
        }
        let inv_t = 1.0 / self.params.temperature;
        self.weights.clear();
        let mut total = 0.0f64;
        // A logit equal (same bits) to the previous one gets the previous weight without a
        // new `exp`: the same value, so the same bits, but runs of equal logits (the demo
        // model's ~199k tokens whose logit is exactly 0.0) cost a compare instead of an `exp`.
        let mut prev: Option<(u32, f32)> = None;
        self.weights.extend(logits.iter().map(|&l| {
            let w = match prev {
                Some((bits, w)) if bits == l.to_bits() => w,
                _ => {
                    let w = if l.is_finite() {
                        ((l - max) * inv_t).exp()
                    } else {
                        0.0
                    };
                    prev = Some((l.to_bits(), w));
                    w
                }
            };
            total += f64::from(w);
            w
        }));
        Ok(total)
    }

    /// Apply top-k, top-p and min-p to `weights`, leaving the survivors in
    /// `candidates` (unnormalised). Returns their total weight.
    fn truncate(&mut self) -> f64 {
        self.truncate_sorted(false)
    }

    /// As `truncate`; with `full_sort` the survivors are always in
    /// descending order (the sampling path only needs that when top-p runs).
    fn truncate_sorted(&mut self, full_sort: bool) -> f64 {
        let params = &self.params;
        self.candidates.clear();
        self.candidates.extend(
            self.weights
                .iter()
                .enumerate()
                .filter(|(_, &w)| w > 0.0)
                .map(|(token, &w)| Candidate {
                    token: token as u32,
                    prob: w,
                }),
        );
        // Most likely first; equal weights: lower token id first.
        let order =
            |a: &Candidate, b: &Candidate| b.prob.total_cmp(&a.prob).then(a.token.cmp(&b.token));

        let mut sorted = false;
        if params.top_k > 0 && params.top_k < self.candidates.len() {
            self.candidates
                .select_nth_unstable_by(params.top_k - 1, order);
            self.candidates.truncate(params.top_k);
            self.candidates.sort_unstable_by(order);
            sorted = true;
        }

        if params.top_p < 1.0 {
            let total: f64 = self.candidates.iter().map(|c| f64::from(c.prob)).sum();
            let needed = f64::from(params.top_p) * total;
            if !sorted {
                // Try the nucleus among the most likely few first.
                let m = NUCLEUS_PREFILTER.min(self.candidates.len());
                if m < self.candidates.len() {
                    self.candidates.select_nth_unstable_by(m - 1, order);
                }
                self.candidates[..m].sort_unstable_by(order);
                let head: f64 = self.candidates[..m].iter().map(|c| f64::from(c.prob)).sum();
                if head < needed {
                    self.candidates.sort_unstable_by(order);
                }
                sorted = true;
            }
            // Keep the shortest prefix whose mass reaches top_p.
            let mut acc = 0.0f64;
            let mut keep = self.candidates.len();
            for (i, c) in self.candidates.iter().enumerate() {
                acc += f64::from(c.prob);
                if acc >= needed {
                    keep = i + 1;
                    break;
                }
            }
            self.candidates.truncate(keep);
        }

        if params.min_p > 0.0 {
            let max = self
                .candidates
                .iter()
                .map(|c| c.prob)
                .fold(0.0f32, f32::max);
            let threshold = params.min_p * max;
            self.candidates.retain(|c| c.prob >= threshold);
        }

        if full_sort && !sorted {
            self.candidates.sort_unstable_by(order);
        }
        self.candidates.iter().map(|c| f64::from(c.prob)).sum()
    }
}

/// Index of the largest finite logit; ties go to the lowest index (as
/// `torch.argmax` does). Non-finite logits are ignored, as in the sampling
/// path. `None` when no logit is finite.
pub fn argmax(logits: &[f32]) -> Option<u32> {
    // Two passes the compiler vectorises (a per-step cost for every greedy row of a batch):
    // the largest finite value, lane by lane, then the first position holding it. Equal
    // values (0.0 and -0.0 included) resolve to the lowest index, as a sequential scan does.
    const LANES: usize = 16;
    let mut lane_max = [f32::NEG_INFINITY; LANES];
    let chunks = logits.chunks_exact(LANES);
    let tail = chunks.remainder();
    for chunk in chunks {
        for (m, &l) in lane_max.iter_mut().zip(chunk) {
            *m = if l.is_finite() && l > *m { l } else { *m };
        }
    }
    let mut max = f32::NEG_INFINITY;
    for &l in lane_max.iter().chain(tail) {
        if l.is_finite() && l > max {
            max = l;
        }
    }
    if max == f32::NEG_INFINITY {
        // Only -inf, +inf and NaN (none finite), or an empty slice.
        return None;
    }
    logits.iter().position(|&l| l == max).map(|i| i as u32)
}

/// The plain sequential scan [`argmax`] must agree with (tests compare them).
#[cfg(test)]
fn argmax_scan(logits: &[f32]) -> Option<u32> {
    let mut best: Option<(usize, f32)> = None;
    for (i, &l) in logits.iter().enumerate() {
        if !l.is_finite() {
            continue;
        }
        match best {
            Some((_, b)) if l <= b => {}
            _ => best = Some((i, l)),
        }
    }
    best.map(|(i, _)| i as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The vectorised argmax against the sequential scan on random logits with ties, signed
    /// zeros, infinities and NaNs at random places, lengths around the lane count.
    #[test]
    fn argmax_matches_sequential_scan() {
        let mut rng = ChaCha12Rng::seed_from_u64(9);
        let specials = [
            0.0f32,
            -0.0,
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::NAN,
            1.5,
            -1e30,
        ];
        for case in 0..3000 {
            let len = match case % 4 {
                0 => rng.random_range(0..40),
                1 => rng.random_range(0..200),
                _ => rng.random_range(0..2000),
            };
            let coarse = case % 3 == 0; // few distinct values: many ties
            let logits: Vec<f32> = (0..len)
                .map(|_| {
                    if rng.random_range(0..10) == 0 {
                        specials[rng.random_range(0..specials.len())]
                    } else if coarse {
                        rng.random_range(-3..3) as f32
                    } else {
                        rng.random_range(-20.0..20.0)
                    }
                })
                .collect();
            assert_eq!(argmax(&logits), argmax_scan(&logits), "{logits:?}");
        }
        assert_eq!(argmax(&[f32::NAN, f32::INFINITY]), None);
        assert_eq!(argmax(&[-0.0, 0.0]), Some(0));
        assert_eq!(argmax(&[0.0, -0.0]), Some(0));
    }

    /// `fill_weights` (which reuses the weight of a repeated logit) against one `exp` per
    /// logit summed in order: the same bits for every weight and for the total, on logits with
    /// long runs of equal values (as the demo model's exact zeros), signed zeros, infinities
    /// and NaNs (so seeded draws, which read only these, are unchanged).
    #[test]
    fn fill_weights_matches_one_exp_per_logit() {
        let mut rng = ChaCha12Rng::seed_from_u64(4);
        for case in 0..300 {
            let len = rng.random_range(1..3000);
            let logits: Vec<f32> = (0..len)
                .map(|i| match (i / 37 + case) % 5 {
                    0 | 1 => 0.0, // runs of exact zeros
                    2 => [-0.0, f32::NAN, f32::NEG_INFINITY, f32::INFINITY][i % 4],
                    _ => rng.random_range(-8.0..8.0),
                })
                .collect();
            let temperature = [0.3f32, 1.0, 1.7][case % 3];
            let mut sampler = Sampler::new(SamplingParams {
                temperature,
                seed: Some(case as u64),
                ..SamplingParams::default()
            })
            .unwrap();
            let Ok(total) = sampler.fill_weights(&logits) else {
                assert!(logits.iter().all(|l| !l.is_finite()));
                continue;
            };
            let max = logits
                .iter()
                .copied()
                .filter(|l| l.is_finite())
                .fold(f32::NEG_INFINITY, f32::max);
            let inv_t = 1.0 / temperature;
            let want: Vec<f32> = logits
                .iter()
                .map(|&l| {
                    if l.is_finite() {
                        ((l - max) * inv_t).exp()
                    } else {
                        0.0
                    }
                })
                .collect();
            let want_total = want.iter().fold(0.0f64, |t, &w| t + f64::from(w));
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&sampler.weights), bits(&want), "case {case}");
            assert_eq!(total.to_bits(), want_total.to_bits(), "case {case}");
        }
    }
}
