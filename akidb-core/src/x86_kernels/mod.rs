//! akidb-core's own x86-64 matmul kernels, for AVX2 + FMA CPUs without AVX-512 (AMD Zen 1–3, Intel
//! before Skylake-SP and Ice Lake), and the dispatch tier above tract's that picks them for weight
//! products:
//!
//! - [`f32`]: 16×6, prefetching the weight stream: the exact path's products (int8 and fp32 bundles);
//! - [`i8`]: int8 × int8 → i32, 8×4, exact: the `int8-dynamic` bundles' integer products, which on
//!   these CPUs tract 0.23.9 can only run on its `avx2_mmm_i32_8x8`, 50–100× slower than the f32
//!   kernel (PERF.md).
//!
//! AVX-512 machines keep tract's kernels: they have f32 kernels of their own and, with VNNI or AMX,
//! integer ones; we have not measured ours against them.

pub mod f32;
pub mod i8;

use tract_onnx::prelude::DatumType;
use tract_onnx::tract_core::tract_linalg::isa::{native, Arch, Isa, IsaReq, IsaSet};
use tract_onnx::tract_core::tract_linalg::mmm::{Query, Suitable};
use tract_onnx::tract_core::tract_linalg::mmm_tiers::MmmTier;

/// Whether this tier speaks on a machine: AVX2 and FMA, and no AVX-512.
fn applies(isa: &IsaSet) -> bool {
    KERNEL_ISA.satisfied_by(*isa) && !isa.has(Isa::X86_64Avx512f)
}

/// What both kernels need to run at all (their `IsaReq`); the tier asks for no AVX-512 besides.
const KERNEL_ISA: IsaReq = IsaReq::ANY.needing(&[Isa::X86_64Avx2, Isa::X86_64Fma]);

/// Whether this running CPU gets the tier's kernels: the tier's own test on the instruction set tract
/// sees here (probed once, then edited by `TRACT_CPU_ISA`), so callers choosing sequence buckets or the
/// integer path agree with the kernels tract will plan.
pub fn applies_here() -> bool {
    applies(&native())
}

/// Whether this CPU can run the kernels, for their unit tests; says so on stderr when it can't (such a
/// machine would never plan them).
#[cfg(test)]
fn cpu_runs(kernel: &str) -> bool {
    let runs = KERNEL_ISA.satisfied_by(native());
    if !runs {
        eprintln!("NOT RUN: this CPU has no AVX2 + FMA, so {kernel} is never picked here");
    }
    runs
}

/// Claims products of more than one column whose `m` is a weight's output width (at least 64 rows):
/// f32 for [`f32`], i32 (int8 operands) for [`i8`]. Attention's per-head products (12×32 by 32×12)
/// and single columns stay on tract's picks.
fn preferred(_: &IsaSet, accumulator: DatumType, query: &Query, _: &[Suitable]) -> Option<&'static str> {
    match (accumulator, query.m, query.n) {
        (DatumType::F32, Some(m), Some(n)) if m >= 64 && n > 1 => Some(f32::NAME),
        (DatumType::I32, Some(m), Some(n)) if m >= 64 && n > 1 => Some(i8::NAME),
        _ => None,
    }
}

inventory::submit! {
    MmmTier {
        arch: Some(Arch::X86_64),
        // Above every tier of tract 0.23.9's x86-64 ladder (1–8).
        precedence: 9,
        name: "akidb-avx2",
        applies,
        preferred,
    }
}

/// Keeps this module linked in: a linker may drop an object that nothing references, and with it
/// the kernels' and the tier's registrations.
pub(crate) fn keep_linked() {
    std::hint::black_box((
        preferred as *const (),
        f32::run as *const (),
        i8::run as *const (),
    ));
}

#[cfg(test)]
mod tests {
    use super::*;
    use tract_onnx::prelude::tvec;
    use tract_onnx::tract_core::tract_linalg::WeightType;

    fn query(weight: DatumType, m: usize, n: usize) -> Query {
        Query {
            weight: WeightType::Plain(weight),
            activation: weight,
            accumulators: tvec![if weight == DatumType::I8 {
                DatumType::I32
            } else {
                weight
            }],
            store: None,
            allow_extractor: true,
            m: Some(m),
            k: Some(384),
            n: Some(n),
        }
    }

    /// The tier claims weight products (tens of rows and up, more than one column) and leaves
    /// attention's small ones and single columns to tract.
    #[test]
    fn the_tier_claims_weight_products_only() {
        let isa = IsaSet::of_arch(Arch::X86_64);
        let f32_query = |m, n| query(DatumType::F32, m, n);
        let i8_query = |m, n| query(DatumType::I8, m, n);
        assert_eq!(
            preferred(&isa, DatumType::F32, &f32_query(384, 12), &[]),
            Some(f32::NAME)
        );
        assert_eq!(
            preferred(&isa, DatumType::F32, &f32_query(1536, 512), &[]),
            Some(f32::NAME)
        );
        assert_eq!(preferred(&isa, DatumType::F32, &f32_query(12, 12), &[]), None);
        assert_eq!(preferred(&isa, DatumType::F32, &f32_query(384, 1), &[]), None);
        assert_eq!(
            preferred(&isa, DatumType::I32, &i8_query(384, 12), &[]),
            Some(i8::NAME)
        );
        assert_eq!(preferred(&isa, DatumType::I32, &i8_query(12, 12), &[]), None);
        assert_eq!(preferred(&isa, DatumType::F16, &f32_query(384, 12), &[]), None);
    }

    #[test]
    fn the_tier_speaks_on_avx2_fma_machines_without_avx512_only() {
        let avx2 = IsaSet::of_arch(Arch::X86_64).with(Isa::X86_64Avx2);
        assert!(!applies(&avx2));
        assert!(applies(&avx2.with(Isa::X86_64Fma)));
        assert!(!applies(&avx2.with(Isa::X86_64Fma).with(Isa::X86_64Avx512f)));
    }
}
