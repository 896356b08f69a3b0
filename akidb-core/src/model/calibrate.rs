//! Calibration of an `int8-dynamic` bundle at build time: which input channels of each weight product
//! are outliers, to be kept out of its int8 product ([`super::integer`]).
//!
//! The exact int8 model runs on a set of calibration texts with every weight product's activation as an
//! output; a channel is an outlier when its largest magnitude over all tokens is more than
//! [`OUTLIER_RATIO`] times the median channel's. This model's LayerNorm outputs have a few such channels
//! (one reaches 28–30 where the median channel's maximum is 1.7): they set each row's quantisation range
//! and leave the rest a few levels each. In PERF.md's simulation, taking them out lifted the golden
//! minimum cosine from 0.9912 to 0.9953 (threshold 3×, 182 channels over 24 activations).

use std::collections::hash_map::Entry;
use std::collections::HashMap;

use tract_onnx::prelude::*;

use super::inspect::{check_max_seq_length, parse_named};
use super::rewrite::{fold_constants, prepare, FoldedWeights};
use super::{integer, model_error, PaddedBatch};
use crate::error::Result;
use crate::manifest::{FileRole, Manifest, OutlierChannels, MAX_OUTLIER_CHANNELS};
use crate::tokenize::TextTokenizer;

/// A channel whose largest magnitude exceeds this many times the median channel's is an outlier.
pub(crate) const OUTLIER_RATIO: f32 = 3.0;

/// The outlier channels of each weight product of the model `manifest` describes, found by running
/// `texts` (one at a time, unpadded) through the exact int8 model. Products reading one activation
/// (attention's Q, K and V) get the same channels; products without outliers are left out. At most
/// [`MAX_OUTLIER_CHANNELS`] per product, the widest first.
pub(crate) fn outlier_channels(
    model: &[u8],
    manifest: &Manifest,
    tokenizer: &TextTokenizer,
    texts: &[&str],
) -> Result<OutlierChannels> {
    let path = manifest.file(FileRole::Model).path.clone();
    let fail = |e: TractError| model_error(&path, format!("calibrating outlier channels: {e:#}"));
    let mut source = parse_named(model, &manifest.onnx, &path)?;
    check_max_seq_length(&source, manifest.max_seq_length, &path)?;
    fold_constants(&mut source).map_err(|e| model_error(&path, format!("{e:#}")))?;
    let has_token_types = manifest.onnx.token_type_ids.is_some();
    let mut typed = prepare(source, 1, None, &mut FoldedWeights::new(), &path)?;

    // Each product's activation, and the distinct activations as the graph's outputs.
    let mut products: Vec<(String, usize)> = Vec::new();
    let mut activations: Vec<OutletId> = Vec::new();
    for node in typed.nodes() {
        if let Some((x, _)) = integer::weight_product(&typed, node.id).map_err(fail)? {
            let slot = activations.iter().position(|a| *a == x).unwrap_or_else(|| {
                activations.push(x);
                activations.len() - 1
            });
            products.push((node.name.clone(), slot));
        }
    }
    if products.is_empty() {
        return Err(model_error(
            &path,
            "calibrating outlier channels: the model has no int8 weight products",
        ));
    }
    typed.select_output_outlets(&activations).map_err(fail)?;
    let sequence = typed.symbols.sym("sequence");
    // One plan per sentence length: the graph's slices of position ids need a concrete length.
    let mut plans: HashMap<usize, super::Plan> = HashMap::new();

    // Largest magnitude per channel of each activation, over every token of every text.
    let mut maxima: Vec<Vec<f32>> = vec![Vec::new(); activations.len()];
    for tokens in tokenizer.encode(texts)? {
        let len = tokens.ids.len();
        let inputs =
            PaddedBatch::pad(std::slice::from_ref(&tokens), &[0], len).into_inputs(has_token_types)?;
        let plan = match plans.entry(len) {
            Entry::Occupied(cached) => cached.into_mut(),
            Entry::Vacant(slot) => {
                let subs = HashMap::from([(sequence.clone(), len.to_dim())]);
                let plan = typed
                    .set_symbols(&subs)
                    .and_then(|m| m.into_runnable())
                    .map_err(fail)?;
                slot.insert(plan)
            }
        };
        let outputs = plan.run(inputs).map_err(fail)?;
        for (max, x) in maxima.iter_mut().zip(&outputs) {
            let x = x.to_plain_array_view::<f32>().map_err(fail)?;
            let k = *x.shape().last().unwrap_or(&0);
            if max.is_empty() {
                max.resize(k, 0.0);
            }
            for (i, v) in x.iter().enumerate() {
                let m = &mut max[i % k.max(1)];
                *m = m.max(v.abs());
            }
        }
    }

    let chosen: Vec<Vec<u32>> = maxima.iter().map(|m| outliers_of(m)).collect();
    Ok(products
        .into_iter()
        .filter(|(_, slot)| !chosen[*slot].is_empty())
        .map(|(name, slot)| (name, chosen[slot].clone()))
        .collect())
}

/// The channels of `maxima` (each channel's largest magnitude) above [`OUTLIER_RATIO`] times the
/// median, at most [`MAX_OUTLIER_CHANNELS`] (the widest), in increasing order.
fn outliers_of(maxima: &[f32]) -> Vec<u32> {
    let mut sorted = maxima.to_vec();
    sorted.sort_by(f32::total_cmp);
    let Some(&median) = sorted.get(sorted.len() / 2) else {
        return Vec::new();
    };
    let mut wide: Vec<(u32, f32)> = maxima
        .iter()
        .enumerate()
        .filter(|(_, &m)| m > OUTLIER_RATIO * median)
        .map(|(c, &m)| (c as u32, m))
        .collect();
    wide.sort_by(|a, b| b.1.total_cmp(&a.1));
    wide.truncate(MAX_OUTLIER_CHANNELS);
    let mut channels: Vec<u32> = wide.into_iter().map(|(c, _)| c).collect();
    channels.sort_unstable();
    channels
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outliers_are_the_channels_past_three_times_the_median() {
        let mut maxima = vec![1.0f32; 9];
        maxima[2] = 3.5;
        maxima[7] = 29.0;
        maxima[5] = 2.9; // under 3×
        assert_eq!(outliers_of(&maxima), vec![2, 7]);
        assert_eq!(outliers_of(&[]), Vec::<u32>::new());
    }

    #[test]
    fn at_most_the_widest_sixty_four_are_kept_in_order() {
        let mut maxima = vec![1.0f32; 400];
        for c in 0..100 {
            maxima[c * 4] = 10.0 + c as f32;
        }
        let chosen = outliers_of(&maxima);
        assert_eq!(chosen.len(), MAX_OUTLIER_CHANNELS);
        // The widest are the last 64 of the hundred: channels 36·4 … 99·4.
        assert_eq!(chosen.first(), Some(&(36 * 4)));
        assert!(chosen.windows(2).all(|w| w[0] < w[1]));
    }
}
