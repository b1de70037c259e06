//! Pruning decisions on the host: importance scores (magnitude, random, gradient-importance Taylor),
//! masks that reach an exact sparsity per layer or under one global threshold, and the gradual
//! (polynomial) schedule of Zhu & Gupta 2017. Masks are f32 0/1 tensors shaped like the weights;
//! the backends apply them (gpu: shaders/mask.wgsl, cpu: reference::ops::mask_apply_reference).

use crate::rng::Rng;

/// How a weight's importance is scored; the lowest scores are pruned first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Criterion {
    /// |w| for single weights; for a neuron, the L1 norm of its incoming weights.
    Magnitude,
    /// L1 norm of a group (a neuron's incoming weights); |w| for single weights.
    L1,
    /// L2 norm of a group; |w| for single weights (the same ranking).
    L2,
    /// A seeded random score: the baseline every criterion should beat.
    Random,
    /// First-order Taylor importance |w · dL/dw| accumulated over batches.
    Taylor,
}

/// Scores of one tensor. `taylor` is the accumulated |w·g| (required for `Criterion::Taylor`).
pub fn scores(criterion: Criterion, w: &[f32], taylor: Option<&[f32]>, rng: &mut Rng) -> Vec<f32> {
    match criterion {
        Criterion::Magnitude | Criterion::L1 | Criterion::L2 => w.iter().map(|v| v.abs()).collect(),
        Criterion::Random => w.iter().map(|_| rng.next_f32()).collect(),
        Criterion::Taylor => taylor.expect("Taylor scores need accumulated |w·g|").to_vec(),
    }
}

/// Which units of a weight matrix W [rows, cols] a score is about: its columns (the layer's own
/// neurons or conv filters) or the input channels it reads (rows r with r % C_in = c, for conv
/// patches and flattened NHWC inputs alike; see nn::surgery).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Units {
    Outputs,
    InputChannels(usize),
}

/// Scores of the units of `w` [rows, cols]: the L1 norm of each unit's weights (Magnitude, L1),
/// their L2 norm, the sum of their accumulated Taylor importances |w·∂L/∂w| (`taylor`, shaped like
/// `w`; the group form of Molchanov et al. 2019), or a seeded random score.
pub fn unit_scores(criterion: Criterion, w: &[f32], taylor: Option<&[f32]>, rows: usize, cols: usize, units: Units, rng: &mut Rng) -> Vec<f32> {
    let (n, cin) = match units {
        Units::Outputs => (cols, 0),
        Units::InputChannels(cin) => (cin, cin),
    };
    if criterion == Criterion::Random {
        return (0..n).map(|_| rng.next_f32()).collect();
    }
    let taylor = taylor.unwrap_or(&[]);
    assert!(criterion != Criterion::Taylor || taylor.len() == w.len(), "Taylor unit scores need accumulated |w·g| shaped like w");
    let mut s = vec![0.0f32; n];
    for r in 0..rows {
        for c in 0..cols {
            let i = r * cols + c;
            let unit = if cin == 0 { c } else { r % cin };
            s[unit] += match criterion {
                Criterion::Magnitude | Criterion::L1 => w[i].abs(),
                Criterion::L2 => w[i] * w[i],
                Criterion::Taylor => taylor[i],
                Criterion::Random => unreachable!("handled above"),
            };
        }
    }
    if criterion == Criterion::L2 {
        s.iter_mut().for_each(|v| *v = v.sqrt());
    }
    s
}

/// Indices of `scores` from least to most important; ties go to the lower index first, so the
/// result does not depend on the sort's stability.
pub fn order(scores: &[f32]) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..scores.len()).collect();
    idx.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]).then(a.cmp(&b)));
    idx
}

/// Number of entries pruned to reach `sparsity` of `n` (rounded to the nearest count).
pub fn pruned_count(n: usize, sparsity: f32) -> usize {
    ((n as f64 * sparsity.clamp(0.0, 1.0) as f64).round() as usize).min(n)
}

/// A 0/1 mask pruning exactly `pruned_count(n, sparsity)` entries: those with the lowest scores.
pub fn mask_by_sparsity(scores: &[f32], sparsity: f32) -> Vec<f32> {
    let mut mask = vec![1.0; scores.len()];
    for &i in order(scores).iter().take(pruned_count(scores.len(), sparsity)) {
        mask[i] = 0.0;
    }
    mask
}

/// Masks for several tensors under one global ranking: exactly `pruned_count(total, sparsity)`
/// entries are pruned across all of them, lowest scores first (Han et al.'s global threshold).
pub fn global_masks(scores: &[Vec<f32>], sparsity: f32) -> Vec<Vec<f32>> {
    let flat: Vec<f32> = scores.iter().flatten().copied().collect();
    let flat_mask = mask_by_sparsity(&flat, sparsity);
    let mut out = Vec::with_capacity(scores.len());
    let mut at = 0;
    for s in scores {
        out.push(flat_mask[at..at + s.len()].to_vec());
        at += s.len();
    }
    out
}

/// Fraction of zeros in a mask.
pub fn sparsity_of(mask: &[f32]) -> f32 {
    if mask.is_empty() {
        return 0.0;
    }
    mask.iter().filter(|&&m| m == 0.0).count() as f32 / mask.len() as f32
}

/// Gradual pruning (Zhu & Gupta 2017): the sparsity at step t of a schedule starting at t0 with
/// n pruning steps Δt apart: s_t = s_f + (s_i − s_f)(1 − (t − t0)/(nΔt))³, held at s_i before t0
/// and at s_f after t0 + nΔt.
pub fn polynomial_sparsity(s_i: f32, s_f: f32, t: usize, t0: usize, n: usize, dt: usize) -> f32 {
    if t <= t0 {
        return s_i;
    }
    let span = (n * dt).max(1) as f64;
    let progress = ((t - t0) as f64 / span).min(1.0);
    (s_f as f64 + (s_i - s_f) as f64 * (1.0 - progress).powi(3)) as f32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mask_prunes_exactly_the_lowest_scores() {
        let w = [0.5f32, -0.1, 0.3, 0.9, 0.05, -0.7];
        let m = mask_by_sparsity(&scores(Criterion::Magnitude, &w, None, &mut Rng::new(0, 0)), 0.5);
        assert_eq!(m, vec![1.0, 0.0, 0.0, 1.0, 0.0, 1.0]);
        assert_eq!(sparsity_of(&m), 0.5);
        // Ties: the lower index goes first.
        assert_eq!(mask_by_sparsity(&[1.0, 1.0, 1.0, 1.0], 0.5), vec![0.0, 0.0, 1.0, 1.0]);
    }

    #[test]
    fn sparsity_reached_equals_target_for_awkward_sizes() {
        let mut rng = Rng::new(5, 0);
        for n in [1usize, 7, 100, 1001, 235_200] {
            let w: Vec<f32> = (0..n).map(|_| rng.uniform(-1.0, 1.0)).collect();
            for s in [0.0f32, 0.08, 0.5, 0.92, 1.0] {
                let m = mask_by_sparsity(&scores(Criterion::Magnitude, &w, None, &mut rng), s);
                assert_eq!(m.iter().filter(|&&v| v == 0.0).count(), pruned_count(n, s), "n={n} s={s}");
                // Every pruned weight is no larger than every kept one.
                let max_pruned = w.iter().zip(&m).filter(|(_, &k)| k == 0.0).map(|(v, _)| v.abs()).fold(0.0, f32::max);
                let min_kept = w.iter().zip(&m).filter(|(_, &k)| k == 1.0).map(|(v, _)| v.abs()).fold(f32::INFINITY, f32::min);
                assert!(max_pruned <= min_kept, "n={n} s={s}");
            }
        }
    }

    #[test]
    fn unit_scores_are_column_norms() {
        // w [2, 3]: columns (1, -2), (0, 0), (3, 4).
        let w = [1.0, 0.0, 3.0, -2.0, 0.0, 4.0];
        let mut rng = Rng::new(0, 0);
        assert_eq!(unit_scores(Criterion::L1, &w, None, 2, 3, Units::Outputs, &mut rng), vec![3.0, 0.0, 7.0]);
        assert_eq!(unit_scores(Criterion::L2, &w, None, 2, 3, Units::Outputs, &mut rng), vec![5.0f32.sqrt(), 0.0, 5.0]);
        let taylor = [0.5, 1.0, 0.0, 0.25, 2.0, 1.0];
        assert_eq!(unit_scores(Criterion::Taylor, &w, Some(&taylor), 2, 3, Units::Outputs, &mut rng), vec![0.75, 3.0, 1.0]);
    }

    #[test]
    fn channel_scores_group_rows_by_input_channel() {
        // w [4, 2] reading 2 input channels: rows 0 and 2 are channel 0, rows 1 and 3 channel 1
        // (two taps of a conv patch, or two pixels of a flattened map).
        let w = [1.0, -1.0, 0.0, 2.0, 3.0, 0.0, 0.0, -4.0];
        let mut rng = Rng::new(0, 0);
        assert_eq!(unit_scores(Criterion::L1, &w, None, 4, 2, Units::InputChannels(2), &mut rng), vec![5.0, 6.0]);
        assert_eq!(unit_scores(Criterion::L2, &w, None, 4, 2, Units::InputChannels(2), &mut rng), vec![11.0f32.sqrt(), 20.0f32.sqrt()]);
    }

    #[test]
    fn global_threshold_spreads_sparsity_by_magnitude() {
        // Layer A's weights are all small, layer B's large: a global 50% prunes A entirely.
        let a = vec![0.01f32; 10];
        let b = vec![1.0f32; 10];
        let m = global_masks(&[a, b], 0.5);
        assert_eq!(sparsity_of(&m[0]), 1.0);
        assert_eq!(sparsity_of(&m[1]), 0.0);
    }

    #[test]
    fn polynomial_schedule_values() {
        // s_i = 0, s_f = 0.9, t0 = 100, 10 steps of 10.
        assert_eq!(polynomial_sparsity(0.0, 0.9, 50, 100, 10, 10), 0.0);
        assert_eq!(polynomial_sparsity(0.0, 0.9, 100, 100, 10, 10), 0.0);
        let half = polynomial_sparsity(0.0, 0.9, 150, 100, 10, 10);
        assert!((half - 0.9 * (1.0 - 0.125)).abs() < 1e-6, "{half}");
        assert!((polynomial_sparsity(0.0, 0.9, 200, 100, 10, 10) - 0.9).abs() < 1e-6);
        assert!((polynomial_sparsity(0.0, 0.9, 10_000, 100, 10, 10) - 0.9).abs() < 1e-6);
        // Monotone in t.
        let mut last = 0.0;
        for t in 100..=200 {
            let s = polynomial_sparsity(0.2, 0.9, t, 100, 10, 10);
            assert!(s >= last);
            last = s;
        }
    }

    #[test]
    fn random_criterion_is_seeded() {
        let w = vec![1.0f32; 50];
        let a = mask_by_sparsity(&scores(Criterion::Random, &w, None, &mut Rng::new(1, 9)), 0.3);
        let b = mask_by_sparsity(&scores(Criterion::Random, &w, None, &mut Rng::new(1, 9)), 0.3);
        let c = mask_by_sparsity(&scores(Criterion::Random, &w, None, &mut Rng::new(2, 9)), 0.3);
        assert_eq!(a, b);
        assert_ne!(a, c);
    }
}
