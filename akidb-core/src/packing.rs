//! [`PackedI8Groups`]: int8 operands in panels of `r` rows or columns, `g` consecutive `k` of each
//! together (tract's `PackedI8K4` is `g = 4`), `k` padded to a multiple of `g` with zeros; each value kept
//! as int8 or sign-extended to 16 bits.
//!
//! Why: the int8 kernels multiply on 16-bit dot products (wasm's `i32x4.dot_i16x8_s`, x86-64's
//! `vpmaddwd`), which add pairs of `k` into 32-bit lanes, and broadcast each column of B (the
//! activations) over a vector. Packed as int8, every tile step widened B again and broadcast its
//! columns (a shuffle); on x86-64 both become shuffle-port instructions, the port that also takes half
//! of the dot products: the kernel's bottleneck. A product packs B once and every row tile reads it, so
//! widening it here takes that work out of the kernel's loop: a column's values come in with one
//! broadcast load. Pairs (`g = 2`) let the wasm kernel's dot products give whole row sums (see
//! `wasm_kernels::i8`).

use std::fmt;

use tract_onnx::prelude::{DatumType, TDim, ToDim, TractResult};
use tract_onnx::tract_core::internal::{bail, ensure, f16, Blob, DimLike, TensorView};
use tract_onnx::tract_core::prelude::Tensor;
use tract_onnx::tract_core::tract_linalg::mmm::{
    EagerPackedInput, MMMInputFormat, MMMInputValue, PackedExoticFact, PackedMatrixStorage,
};
use tract_onnx::tract_core::tract_linalg::WeightType;

/// int8 operands in panels of `r`, `g` consecutive `k` together: element (`mn`, `k`) of panel `mn / r`
/// at `(k / g) · r · g + (mn % r) · g + k % g`, counted in values: bytes, or i16s when widened.
///
/// ```
/// use akidb_core::packing::PackedI8Groups;
/// use tract_onnx::prelude::*;
///
/// // Two columns (mn) of five k, four k together: k is padded to 8, one panel of r = 4 columns.
/// let b = tensor2(&[[1i8, 2, 3, 4, 5], [-1, -2, -3, -4, -128]]);
/// let packed = PackedI8Groups::widened(4, 4).pack(&b, 1, 0).unwrap();
/// assert_eq!(&packed[..8], &[1, 2, 3, 4, -1, -2, -3, -4]);
/// assert_eq!(&packed[16..18], &[5, 0]);
/// assert_eq!(&packed[20..22], &[-128, 0]);
/// // Pairs of k, as int8.
/// let pairs = PackedI8Groups::new(4, 2).pack(&b, 1, 0).unwrap();
/// assert_eq!(&pairs[..8], &[1, 2, -1, -2, 0, 0, 0, 0]);
/// ```
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
pub struct PackedI8Groups {
    r: usize,
    k_group: usize,
    widened: bool,
}

/// Alignment of a packing, as tract's `PackedI8K4` aligns its own.
const ALIGN: usize = 16;

impl PackedI8Groups {
    /// int8 values in panels of `r` rows or columns, `k_group` consecutive `k` together.
    pub fn new(r: usize, k_group: usize) -> Self {
        assert!(r > 0 && k_group > 0, "panels of {r} and groups of {k_group} k");
        PackedI8Groups {
            r,
            k_group,
            widened: false,
        }
    }

    /// As [`PackedI8Groups::new`], each value sign-extended to i16.
    pub fn widened(r: usize, k_group: usize) -> Self {
        PackedI8Groups {
            widened: true,
            ..Self::new(r, k_group)
        }
    }

    /// Values in one panel.
    fn panel_len(&self, k: usize) -> usize {
        k.div_ceil(self.k_group) * self.k_group * self.r
    }

    /// Bytes of one packed value.
    fn value_bytes(&self) -> usize {
        if self.widened {
            size_of::<i16>()
        } else {
            size_of::<i8>()
        }
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
        let width = self.value_bytes();
        // SAFETY: every byte is written by the `fill(0)` below before anything reads it.
        let mut blob = unsafe { Blob::new_for_size_and_align(panels * panel_len * width, ALIGN) };
        blob.as_bytes_mut().fill(0);
        // SAFETY: `src` is `t`'s data, read within its shape through its strides; `blob` holds
        // `panels · panel_len` values of `width` bytes, and `fill` writes below that.
        unsafe {
            let (src, dst) = (t.as_ptr_unchecked::<i8>(), blob.as_mut_ptr());
            let (along_k, along_mn) = ((k, ks), (mn, ms));
            // The group sizes the kernels use as constants, so that `fill`'s inner loop unrolls.
            match (self.widened, self.k_group) {
                (false, 2) => self.fill(src, along_k, along_mn, dst as *mut i8, 2),
                (false, 4) => self.fill(src, along_k, along_mn, dst as *mut i8, 4),
                (false, g) => self.fill(src, along_k, along_mn, dst as *mut i8, g),
                (true, 2) => self.fill(src, along_k, along_mn, dst as *mut i16, 2),
                (true, 4) => self.fill(src, along_k, along_mn, dst as *mut i16, 4),
                (true, g) => self.fill(src, along_k, along_mn, dst as *mut i16, g),
            }
        }
        Ok(EagerPackedInput {
            fact: PackedExoticFact {
                format: Box::new(self.clone()),
                mn: mn.to_dim(),
                k,
            },
            packed: blob.into(),
            panel_bytes: panel_len * width,
            mn,
        })
    }

    /// Writes the `(k, k stride)` × `(mn, mn stride)` values at `src` into panels at `dst`, groups of `g`.
    ///
    /// # Safety
    /// `src` is readable at every (k, mn) through the strides; `dst` holds `mn.div_ceil(r)` panels.
    #[inline(always)]
    unsafe fn fill<T: From<i8>>(
        &self,
        src: *const i8,
        (k, ks): (usize, isize),
        (mn, ms): (usize, isize),
        dst: *mut T,
        g: usize,
    ) {
        let (r, panel_len, whole) = (self.r, self.panel_len(k), k / g);
        for m in 0..mn {
            // SAFETY: the function's contract; every offset is within the shape or the panels.
            unsafe {
                let column = src.offset(m as isize * ms);
                let out = dst.add((m / r) * panel_len + (m % r) * g);
                for group in 0..whole {
                    let (from, to) = (column.offset((group * g) as isize * ks), out.add(group * r * g));
                    for i in 0..g {
                        *to.add(i) = T::from(*from.offset(i as isize * ks));
                    }
                }
                // The last group, short of `g` (its padding stays zero).
                for kk in whole * g..k {
                    *out.add(whole * r * g + kk % g) = T::from(*column.offset(kk as isize * ks));
                }
            }
        }
    }

    /// Packs `t` and returns the packed values, as i16s either way: for tests and examples.
    pub fn pack(&self, t: &Tensor, k_axis: usize, mn_axis: usize) -> TractResult<Vec<i16>> {
        let packed = self.pack_view(&t.view(), k_axis, mn_axis)?;
        let bytes = packed.packed.as_bytes();
        Ok(if self.widened {
            bytes
                .chunks_exact(2)
                .map(|b| i16::from_ne_bytes([b[0], b[1]]))
                .collect()
        } else {
            bytes.iter().map(|b| *b as i8 as i16).collect()
        })
    }
}

impl fmt::Display for PackedI8Groups {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        let widened = if self.widened { "asI16" } else { "" };
        write!(f, "I8K{}{widened}[{}]", self.k_group, self.r)
    }
}

impl MMMInputFormat for PackedI8Groups {
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
        self.k_group
    }

    fn merge_with<'o, 'a: 'o, 'b: 'o>(&'a self, o: &'b dyn MMMInputFormat) -> Option<&'o dyn MMMInputFormat> {
        o.downcast_ref::<Self>().filter(|x| *x == self).map(|_| self as _)
    }

    fn mem_size(&self, k: TDim, mn: TDim) -> TDim {
        mn.divceil(self.r) * (self.panel_len(k.to_usize().unwrap_or(0)) * self.value_bytes())
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

    /// The views a product meets, for panels of `r` and `k` × `mn` values: k contiguous (mn × k), and mn
    /// contiguous (k × mn).
    fn views(k: usize, mn: usize) -> [(Tensor, usize, usize); 2] {
        [
            (Tensor::from_shape(&[mn, k], &values(mn * k)).unwrap(), 1, 0),
            (Tensor::from_shape(&[k, mn], &values(mn * k)).unwrap(), 0, 1),
        ]
    }

    /// k not a multiple of the group (padding), mn not a multiple of r (a short last panel).
    const SHAPES: [(usize, usize, usize); 3] = [(4, 5, 7), (4, 384, 12), (8, 37, 3)];

    #[test]
    fn groups_of_four_pack_as_tracts_i8k4_does() {
        for (r, k, mn) in SHAPES {
            for (t, k_axis, mn_axis) in views(k, mn) {
                let want: Vec<i16> = tracts(r, &t.view(), k_axis, mn_axis)
                    .iter()
                    .map(|v| *v as i16)
                    .collect();
                for packing in [PackedI8Groups::new(r, 4), PackedI8Groups::widened(r, 4)] {
                    let ours = packing.pack_view(&t.view(), k_axis, mn_axis).unwrap();
                    assert_eq!(
                        packing.pack(&t, k_axis, mn_axis).unwrap(),
                        want,
                        "{packing} k {k} mn {mn}"
                    );
                    assert_eq!(ours.panel_bytes, k.div_ceil(4) * 4 * r * packing.value_bytes());
                    assert_eq!(
                        packing.mem_size(k.to_dim(), mn.to_dim()).to_usize().unwrap(),
                        ours.packed.len(),
                        "mem_size is the packing's length in bytes"
                    );
                }
            }
        }
    }

    #[test]
    fn pairs_put_each_value_where_the_layout_says() {
        for (r, k, mn) in SHAPES {
            for (t, k_axis, mn_axis) in views(k, mn) {
                let v = values(mn * k);
                let at = |m: usize, kk: usize| {
                    if k_axis == 1 {
                        v[m * k + kk]
                    } else {
                        v[kk * mn + m]
                    }
                };
                for packing in [PackedI8Groups::new(r, 2), PackedI8Groups::widened(r, 2)] {
                    let packed = packing.pack(&t, k_axis, mn_axis).unwrap();
                    let panel = k.div_ceil(2) * 2 * r;
                    assert_eq!(packed.len(), mn.div_ceil(r) * panel, "{packing}");
                    for (i, got) in packed.iter().enumerate() {
                        let (p, within) = (i / panel, i % panel);
                        let (group, rest) = (within / (r * 2), within % (r * 2));
                        let (m, kk) = (p * r + rest / 2, group * 2 + rest % 2);
                        let want = if m < mn && kk < k { at(m, kk) as i16 } else { 0 };
                        assert_eq!(*got, want, "{packing} k {k} mn {mn}: value {i}");
                    }
                }
            }
        }
    }

    #[test]
    fn refuses_what_it_cannot_pack() {
        let floats = Tensor::from_shape(&[2, 3], &[0f32; 6]).unwrap();
        let err = PackedI8Groups::widened(4, 4).pack(&floats, 1, 0).unwrap_err();
        assert!(err.to_string().contains("int8"), "{err}");
        let bytes = Tensor::from_shape(&[2, 3], &[0i8; 6]).unwrap();
        assert!(PackedI8Groups::new(4, 2).pack(&bytes, 1, 1).is_err());
    }
}
