//! [`PackedI8K4Widened`]: int8 operands laid out as tract's `PackedI8K4` lays them out (four `k` of a
//! row or column together, rows or columns side by side in panels of `r`, `k` padded to a multiple of 4
//! with zeros), each value sign-extended to 16 bits.
//!
//! Why: the wasm int8 kernel (`wasm_kernels::i8`) multiplies on `i32x4.dot_i16x8_s`, whose operands are
//! 16-bit, and broadcasts each column of B (the activations) over a vector. Packed as int8, every tile
//! step widened B again (`v128.load8x8_s`) and broadcast its columns (a shuffle); on x86-64 both become
//! shuffle-port instructions, the port that also takes half of the dot products: the kernel's
//! bottleneck. A product packs B once and every row tile reads it, so widening it here takes that work
//! out of the kernel's loop: one column's four values come in with `v128.load64_splat`, a plain load.

use std::fmt;

use tract_onnx::prelude::{DatumType, TDim, ToDim, TractResult};
use tract_onnx::tract_core::internal::{bail, ensure, f16, Blob, DimLike, TensorView};
use tract_onnx::tract_core::prelude::Tensor;
use tract_onnx::tract_core::tract_linalg::mmm::{
    EagerPackedInput, MMMInputFormat, MMMInputValue, PackedExoticFact, PackedMatrixStorage,
};
use tract_onnx::tract_core::tract_linalg::WeightType;

/// int8 operands in `PackedI8K4`'s layout, widened to i16: element (`mn`, `k`) of panel `mn / r` at
/// `(k / 4) · r · 4 + (mn % r) · 4 + k % 4`, counted in i16s.
///
/// ```
/// use akidb_core::packing::PackedI8K4Widened;
/// use tract_onnx::prelude::*;
///
/// // Two columns (mn) of five k: k is padded to 8, one panel of r = 4 columns.
/// let b = tensor2(&[[1i8, 2, 3, 4, 5], [-1, -2, -3, -4, -128]]);
/// let packed = PackedI8K4Widened::new(4).pack(&b, 1, 0).unwrap();
/// assert_eq!(&packed[..8], &[1, 2, 3, 4, -1, -2, -3, -4]);
/// assert_eq!(&packed[16..18], &[5, 0]);
/// assert_eq!(&packed[20..22], &[-128, 0]);
/// ```
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
pub struct PackedI8K4Widened {
    r: usize,
}

/// Bytes of one packed value.
const WIDE: usize = size_of::<i16>();
/// Alignment of a packing, as tract's `PackedI8K4` aligns its own.
const ALIGN: usize = 16;

impl PackedI8K4Widened {
    /// The packing for panels of `r` rows or columns.
    pub fn new(r: usize) -> Self {
        PackedI8K4Widened { r }
    }

    /// i16s in one panel.
    fn panel_len(&self, k: usize) -> usize {
        k.div_ceil(4) * 4 * self.r
    }

    /// Packs `t` (int8; any strides) for a product along `k_axis`.
    pub fn pack_view(&self, t: &TensorView, k_axis: usize, mn_axis: usize) -> TractResult<EagerPackedInput> {
        ensure!(
            k_axis != mn_axis,
            "k_axis and mn_axis must differ (both are {k_axis})"
        );
        ensure!(
            t.datum_type() == DatumType::I8,
            "{self} packs int8 values, not {:?}",
            t.datum_type()
        );
        let (k, mn) = (t.shape()[k_axis], t.shape()[mn_axis]);
        let (ks, ms) = (t.strides()[k_axis], t.strides()[mn_axis]);
        let panel_len = self.panel_len(k);
        let panels = mn.div_ceil(self.r);
        // SAFETY: every byte is written by the `fill` below before anything reads it.
        let mut blob = unsafe { Blob::new_for_size_and_align(panels * panel_len * WIDE, ALIGN) };
        blob.as_bytes_mut().fill(0);
        // SAFETY: `src` is `t`'s data, read at (kk, mn) within its shape through its strides; `dst` is
        // `blob`, `panels · panel_len` i16s, written at offsets below that (kk < k, mn < panels · r).
        unsafe {
            let src = t.as_ptr_unchecked::<i8>();
            let dst = blob.as_mut_ptr() as *mut i16;
            for p in 0..panels {
                let panel = dst.add(p * panel_len);
                let first = p * self.r;
                for lm in 0..self.r.min(mn - first) {
                    let column = src.offset((first + lm) as isize * ms);
                    for kk in 0..k {
                        *panel.add((kk / 4) * self.r * 4 + lm * 4 + kk % 4) =
                            *column.offset(kk as isize * ks) as i16;
                    }
                }
            }
        }
        Ok(EagerPackedInput {
            fact: PackedExoticFact {
                format: Box::new(self.clone()),
                mn: mn.to_dim(),
                k,
            },
            packed: blob.into(),
            panel_bytes: panel_len * WIDE,
            mn,
        })
    }

    /// Packs `t` and returns the packed values: for tests and examples.
    pub fn pack(&self, t: &Tensor, k_axis: usize, mn_axis: usize) -> TractResult<Vec<i16>> {
        let packed = self.pack_view(&t.view(), k_axis, mn_axis)?;
        Ok(packed
            .packed
            .as_bytes()
            .chunks_exact(WIDE)
            .map(|b| i16::from_ne_bytes([b[0], b[1]]))
            .collect())
    }
}

impl fmt::Display for PackedI8K4Widened {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "I8K4asI16[{}]", self.r)
    }
}

impl MMMInputFormat for PackedI8K4Widened {
    fn prepare_tensor(&self, t: &Tensor, k_axis: usize, mn_axis: usize) -> TractResult<Tensor> {
        Ok(PackedMatrixStorage::new(self.prepare_one(t, k_axis, mn_axis)?).into_tensor(t.datum_type()))
    }

    fn prepare_one_view(
        &self,
        t: &TensorView,
        k_axis: usize,
        mn_axis: usize,
    ) -> TractResult<Box<dyn MMMInputValue>> {
        Ok(Box::new(self.pack_view(t, k_axis, mn_axis)?))
    }

    fn precursor(&self) -> WeightType {
        WeightType::Plain(DatumType::I8)
    }

    fn r(&self) -> usize {
        self.r
    }

    fn k_alignment(&self) -> usize {
        4
    }

    fn merge_with<'o, 'a: 'o, 'b: 'o>(&'a self, o: &'b dyn MMMInputFormat) -> Option<&'o dyn MMMInputFormat> {
        o.downcast_ref::<Self>()
            .filter(|x| x.r == self.r)
            .map(|_| self as _)
    }

    fn mem_size(&self, k: TDim, mn: TDim) -> TDim {
        mn.divceil(self.r) * (self.panel_len(k.to_usize().unwrap_or(0)) * WIDE)
    }

    fn extract_at_mn_f16(&self, _: &EagerPackedInput, _: usize, _: &mut [f16]) -> TractResult<()> {
        bail!("{self}: no f16 extract")
    }

    fn extract_at_mn_f32(&self, _: &EagerPackedInput, _: usize, _: &mut [f32]) -> TractResult<()> {
        bail!("{self}: no f32 extract")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tract_onnx::tract_core::tract_linalg::pack::PackedI8K4;

    /// Deterministic int8 values over the whole range, −128 and 127 among them.
    fn values(n: usize) -> Vec<i8> {
        (0..n)
            .map(|i| (i as u32).wrapping_mul(2654435761).rotate_right(13) as u8 as i8)
            .collect()
    }

    /// tract's `PackedI8K4` packing of the same view, as i8s.
    fn tracts(r: usize, t: &TensorView, k_axis: usize, mn_axis: usize) -> Vec<i8> {
        let packed = PackedI8K4::new(r).pack_view(t, k_axis, mn_axis).unwrap();
        let packed = packed.downcast_ref::<EagerPackedInput>().unwrap();
        packed.packed.as_bytes().iter().map(|b| *b as i8).collect()
    }

    #[test]
    fn packs_as_tracts_i8k4_does_each_value_widened() {
        // k not a multiple of 4 (padding), mn not a multiple of r (a short last panel), and both
        // layouts a product meets: k contiguous (mn × k), and mn contiguous (k × mn).
        for (r, k, mn) in [(4, 5, 7), (4, 384, 12), (8, 37, 3)] {
            let mn_by_k = Tensor::from_shape(&[mn, k], &values(mn * k)).unwrap();
            let k_by_mn = Tensor::from_shape(&[k, mn], &values(mn * k)).unwrap();
            for (t, k_axis, mn_axis) in [(&mn_by_k, 1, 0), (&k_by_mn, 0, 1)] {
                let widened = PackedI8K4Widened::new(r);
                let ours = widened.pack_view(&t.view(), k_axis, mn_axis).unwrap();
                let want: Vec<i16> = tracts(r, &t.view(), k_axis, mn_axis)
                    .iter()
                    .map(|v| *v as i16)
                    .collect();
                assert_eq!(
                    widened.pack(t, k_axis, mn_axis).unwrap(),
                    want,
                    "r {r} k {k} mn {mn}"
                );
                assert_eq!(ours.panel_bytes, k.div_ceil(4) * 4 * r * 2);
                assert_eq!(
                    widened.mem_size(k.to_dim(), mn.to_dim()).to_usize().unwrap(),
                    ours.packed.len(),
                    "mem_size is the packing's length in bytes"
                );
            }
        }
    }

    #[test]
    fn refuses_what_it_cannot_pack() {
        let floats = Tensor::from_shape(&[2, 3], &[0f32; 6]).unwrap();
        let err = PackedI8K4Widened::new(4).pack(&floats, 1, 0).unwrap_err();
        assert!(err.to_string().contains("int8"), "{err}");
        let bytes = Tensor::from_shape(&[2, 3], &[0i8; 6]).unwrap();
        assert!(PackedI8K4Widened::new(4).pack(&bytes, 1, 1).is_err());
    }
}
