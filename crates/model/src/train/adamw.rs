//! AdamW with decoupled weight decay, step for step as `torch.optim.AdamW` (its single-tensor
//! path): the bias corrections in f64, the moments and the update in f32.

use super::{LoraSet, TrainError};

/// AdamW's settings and state (first and second moments per tensor, in `LoraSet::named`'s
/// order).
#[derive(Clone, Debug)]
pub struct AdamW {
    pub lr: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
    step: u64,
    m: Vec<Vec<f32>>,
    v: Vec<Vec<f32>>,
}

impl Default for AdamW {
    /// PEFT/TRL's defaults for LoRA: lr 2e-4, betas (0.9, 0.999), eps 1e-8, no weight decay.
    fn default() -> AdamW {
        AdamW::new(2e-4, 0.0)
    }
}

impl AdamW {
    pub fn new(lr: f64, weight_decay: f64) -> AdamW {
        AdamW {
            lr,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay,
            step: 0,
            m: vec![],
            v: vec![],
        }
    }

    /// The state a resumed run needs: steps taken and the moments of every tensor (in
    /// `LoraSet::named`'s order; empty before the first step).
    pub fn state(&self) -> (u64, &[Vec<f32>], &[Vec<f32>]) {
        (self.step, &self.m, &self.v)
    }

    /// Continues from a saved [`AdamW::state`] of the tensors of `params`; moments of other
    /// shapes are refused.
    pub fn restore(
        &mut self,
        params: &LoraSet,
        step: u64,
        m: Vec<Vec<f32>>,
        v: Vec<Vec<f32>>,
    ) -> Result<(), TrainError> {
        let lens: Vec<usize> = params.named().iter().map(|(_, _, p)| p.len()).collect();
        let fits = |x: &[Vec<f32>]| {
            x.len() == lens.len() && x.iter().zip(&lens).all(|(a, &n)| a.len() == n)
        };
        let fresh = m.is_empty() && v.is_empty() && step == 0;
        let fitting = fits(&m) && fits(&v);
        if !(fresh || fitting) {
            return Err(TrainError::Shape(format!(
                "optimizer state for {} tensors, the adapter has {}",
                m.len(),
                lens.len()
            )));
        }
        self.step = step;
        self.m = m;
        self.v = v;
        Ok(())
    }

    /// Steps taken so far.
    pub fn steps(&self) -> u64 {
        self.step
    }

    /// One update of `params` by `grads` (the same targets and shapes; the state is created on
    /// the first step).
    pub fn step(&mut self, params: &mut LoraSet, grads: &LoraSet) {
        let gs: Vec<&[f32]> = grads.named().into_iter().map(|(_, _, g)| g).collect();
        let mut ps = params.values_mut();
        assert_eq!(ps.len(), gs.len(), "AdamW: gradients of other targets");
        if self.m.is_empty() {
            self.m = ps.iter().map(|p| vec![0.0; p.len()]).collect();
            self.v = self.m.clone();
        }
        self.step += 1;
        let t = self.step as i32;
        let bc1 = 1.0 - self.beta1.powi(t);
        let bc2_sqrt = (1.0 - self.beta2.powi(t)).sqrt() as f32;
        let step_size = (self.lr / bc1) as f32;
        let decay = (1.0 - self.lr * self.weight_decay) as f32;
        let (b1, b2, eps) = (self.beta1 as f32, self.beta2 as f32, self.eps as f32);
        for (((p, g), m), v) in ps.iter_mut().zip(gs).zip(&mut self.m).zip(&mut self.v) {
            assert_eq!(p.len(), g.len(), "AdamW: gradient shape");
            for (((pv, &gv), mv), vv) in p.iter_mut().zip(g).zip(m.iter_mut()).zip(v.iter_mut()) {
                if self.weight_decay != 0.0 {
                    *pv *= decay;
                }
                // torch: lerp for m, mul/addcmul for v
                *mv += (gv - *mv) * (1.0 - b1);
                *vv = *vv * b2 + (1.0 - b2) * gv * gv;
                let denom = vv.sqrt() / bc2_sqrt + eps;
                *pv += -step_size * (*mv / denom);
            }
        }
    }
}
