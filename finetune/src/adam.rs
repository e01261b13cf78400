//! Adam (no weight decay) with its moments kept by name, so that a checkpoint holds them and
//! a resumed run continues the same optimisation (candle-nn's AdamW keeps
//! its state private).

use std::collections::HashMap;

use candle_core::backprop::GradStore;
use candle_core::{Result, Tensor, Var};

pub struct Adam {
    /// (name, variable, learning rate) of what is trained
    pub params: Vec<(String, Var, f64)>,
    pub m: HashMap<String, Tensor>,
    pub v: HashMap<String, Tensor>,
    pub t: usize,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
}

impl Adam {
    pub fn new(params: Vec<(String, Var, f64)>) -> Result<Self> {
        let mut m = HashMap::new();
        let mut v = HashMap::new();
        for (n, var, _) in &params {
            m.insert(n.clone(), var.as_tensor().zeros_like()?);
            v.insert(n.clone(), var.as_tensor().zeros_like()?);
        }
        Ok(Self {
            params,
            m,
            v,
            t: 0,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
        })
    }

    /// One step; `scale` multiplies every learning rate (the schedule).
    pub fn step(&mut self, grads: &GradStore, scale: f64) -> Result<()> {
        self.t += 1;
        let c1 = 1.0 - self.beta1.powi(self.t as i32);
        let c2 = 1.0 - self.beta2.powi(self.t as i32);
        for (name, var, lr) in &self.params {
            let Some(g) = grads.get(var.as_tensor()) else {
                continue;
            };
            let m = ((&self.m[name] * self.beta1)? + (g * (1.0 - self.beta1))?)?;
            let v = ((&self.v[name] * self.beta2)? + (g.sqr()? * (1.0 - self.beta2))?)?;
            let update = ((&m / c1)? / ((&v / c2)?.sqrt()? + self.eps)?)?;
            var.set(&(var.as_tensor() - (update * (lr * scale))?)?)?;
            self.m.insert(name.clone(), m);
            self.v.insert(name.clone(), v);
        }
        Ok(())
    }

    /// The moments as named tensors, for a checkpoint.
    pub fn state(&self) -> HashMap<String, Tensor> {
        let mut out = HashMap::new();
        for (n, t) in &self.m {
            out.insert(format!("m.{n}"), t.clone());
        }
        for (n, t) in &self.v {
            out.insert(format!("v.{n}"), t.clone());
        }
        out
    }

    pub fn restore(&mut self, state: &HashMap<String, Tensor>, t: usize) -> Result<()> {
        for (n, _, _) in &self.params {
            if let (Some(m), Some(v)) = (state.get(&format!("m.{n}")), state.get(&format!("v.{n}")))
            {
                self.m.insert(n.clone(), m.clone());
                self.v.insert(n.clone(), v.clone());
            }
        }
        self.t = t;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    #[test]
    fn minimises_a_quadratic() {
        let x = Var::new(&[3.0f32, -2.0], &Device::Cpu).unwrap();
        let mut opt = Adam::new(vec![("x".into(), x.clone(), 0.1)]).unwrap();
        for _ in 0..300 {
            let loss = x.as_tensor().sqr().unwrap().sum_all().unwrap();
            let g = loss.backward().unwrap();
            opt.step(&g, 1.0).unwrap();
        }
        let v: Vec<f32> = x.as_tensor().to_vec1().unwrap();
        assert!(v.iter().all(|a| a.abs() < 0.05), "{v:?}");
    }
}
