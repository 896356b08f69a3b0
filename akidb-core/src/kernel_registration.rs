//! How each of akidb-core's own kernels (`x86_kernels`, `wasm_kernels`) declares itself to tract: one
//! macro, so that every kernel registers alike.

/// Declares the calling module's kernel to tract:
/// - `KERNEL`, the `DynKernel` that `$make` builds (from the module's `NAME`, `MR`, `NR` and `run`);
/// - its `MmmRoutine` in tract's kernel registry, where tract's dispatch tiers find it by name;
/// - `run_tile`, the entry point the kernel suites (`crate::kernel_check`) call;
/// - for an `i32` kernel, `int8_packing`: its int8 product's packing, which the int8 suite packs with.
macro_rules! register_kernel {
    (f32, $make:expr) => {
        $crate::kernel_registration::register_kernel!(@kernel f32, $make);
    };
    (i32, $make:expr) => {
        $crate::kernel_registration::register_kernel!(@kernel i32, $make);

        /// The kernel's packing for its int8 product (A's format, B's): public for the kernel suites only.
        #[doc(hidden)]
        pub fn int8_packing() -> &'static $crate::kernel_check::int8::Int8Packing {
            &KERNEL.packings[1]
        }
    };
    (@kernel $acc:ty, $make:expr) => {
        static KERNEL: std::sync::LazyLock<tract_onnx::tract_core::tract_linalg::mmm::DynKernel<MR, NR, $acc>> =
            std::sync::LazyLock::new($make);

        inventory::submit! {
            tract_onnx::tract_core::tract_linalg::mmm_routines::MmmRoutine { make: || KERNEL.mmm() }
        }

        /// Runs the kernel on one tile's program of fused ops: public for the kernel suites only.
        ///
        /// # Safety
        /// As for any tract kernel: the ops' pointers are valid for an `MR × NR` tile and the packing
        /// each `AddMatMul` names, and the CPU has what the kernel was built for.
        #[doc(hidden)]
        pub unsafe fn run_tile(ops: &[tract_onnx::tract_core::tract_linalg::mmm::FusedKerSpec<$acc>]) -> isize {
            // SAFETY: the caller's, as above.
            unsafe { run(ops) }
        }
    };
}
pub(crate) use register_kernel;
