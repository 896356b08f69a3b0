//! Compiled plans, one per concrete (batch, padded sequence) shape, cached with least-recently-used
//! eviction, and the typed graph per batch size they are compiled from.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tract_onnx::prelude::*;
use tract_onnx::tract_core::ops::matmul::optimized::OptMatMul;

use super::rewrite::prepare;
use super::share::release_freed_memory;
use super::{model_error, SentenceModel};
use crate::error::Result;

pub(crate) type Plan = Arc<TypedRunnableModel>;

/// A cached plan, or the place one is being compiled. Each shape has its own lock, so a compile holds up
/// only the callers waiting for that same shape, never the runs of plans already cached.
pub(super) type PlanSlot = Arc<Mutex<Option<Plan>>>;

/// Plans are compiled per (batch, padded sequence) shape; the cache keeps the most recently used.
pub(super) struct PlanCache {
    plans: HashMap<(usize, usize), (PlanSlot, u64)>,
    clock: u64,
    capacity: usize,
}

impl PlanCache {
    /// An empty cache of at most `capacity` plans (at least one).
    pub(super) fn new(capacity: usize) -> PlanCache {
        PlanCache {
            plans: HashMap::new(),
            clock: 0,
            capacity: capacity.max(1),
        }
    }

    /// The slot for `shape`, made (evicting the least recently used) if the cache has none.
    fn slot(&mut self, shape: (usize, usize)) -> PlanSlot {
        self.clock += 1;
        let now = self.clock;
        if let Some((slot, used)) = self.plans.get_mut(&shape) {
            *used = now;
            return slot.clone();
        }
        if self.plans.len() >= self.capacity {
            let oldest = self
                .plans
                .iter()
                .min_by_key(|(_, (_, used))| *used)
                .map(|(k, _)| *k);
            if let Some(key) = oldest {
                self.plans.remove(&key);
            }
        }
        let slot = PlanSlot::default();
        self.plans.insert(shape, (slot.clone(), now));
        slot
    }
}

/// The typed graph of one batch size, from which its plans are compiled.
///
/// Its first plan is compiled straight from the typed graph: `into_optimized` declutters the concrete
/// shape anyway, and decluttering with `sequence` symbolic as well cost more than the compile itself
/// (native, int8: load + first embedding about 60 ms less). A second sequence length declutters the
/// graph once, and every later plan of that batch size starts from the decluttered graph.
pub(super) struct Base {
    graph: Arc<TypedModel>,
    decluttered: bool,
    plans_compiled: usize,
}

impl Base {
    pub(super) fn new(graph: Arc<TypedModel>) -> Base {
        Base {
            graph,
            decluttered: false,
            plans_compiled: 0,
        }
    }
}

impl SentenceModel {
    /// The graph to compile a new plan of `batch` from (see [`Base`]).
    pub(super) fn base(&self, batch: usize) -> Result<Arc<TypedModel>> {
        let mut guard = self.bases.lock().unwrap_or_else(|p| p.into_inner());
        let (bases, folded) = &mut *guard;
        let base = match bases.entry(batch) {
            std::collections::hash_map::Entry::Occupied(entry) => entry.into_mut(),
            std::collections::hash_map::Entry::Vacant(entry) => {
                let integer = self.integer.then_some((&self.outliers, self.products));
                let mut graph = prepare(self.source.clone(), batch, integer, folded, &self.path)?;
                self.share_consts(&mut graph)?;
                entry.insert(Base::new(Arc::new(graph)))
            }
        };
        if base.plans_compiled > 0 && !base.decluttered {
            let mut graph = (*base.graph)
                .clone()
                .into_decluttered()
                .map_err(|e| model_error(&self.path, format!("{e:#}")))?;
            self.share_consts(&mut graph)?;
            base.graph = Arc::new(graph);
            base.decluttered = true;
        }
        base.plans_compiled += 1;
        Ok(base.graph.clone())
    }

    fn share_consts(&self, model: &mut TypedModel) -> Result<()> {
        let mut consts = self.consts.lock().unwrap_or_else(|p| p.into_inner());
        consts.share(model).map_err(|e| model_error(&self.path, e))
    }

    pub(crate) fn plan(&self, batch: usize, seq: usize) -> Result<Plan> {
        let slot = self
            .plans
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .slot((batch, seq));
        let mut slot = slot.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(plan) = &*slot {
            return Ok(plan.clone());
        }
        let subs = HashMap::from([(self.sequence.clone(), seq.to_dim())]);
        let planning_error =
            |e: TractError| model_error(&self.path, format!("planning shape [{batch}, {seq}]: {e:#}"));
        let mut concrete = self.base(batch)?.set_symbols(&subs).map_err(planning_error)?;
        #[cfg(feature = "cuda-backend")]
        if self.gpu {
            super::rewrite::materialise_lazy_weights(&mut concrete).map_err(planning_error)?;
            super::rewrite::is_nan_as_self_comparison(&mut concrete).map_err(planning_error)?;
            let plan = crate::device::compile_plan(concrete).map_err(planning_error)?;
            *slot = Some(plan.clone());
            return Ok(plan);
        }
        super::nan_guard::fuse_nan_guards(&mut concrete).map_err(planning_error)?;
        let mut optimized = self.optimize(concrete).map_err(planning_error)?;
        self.share_consts(&mut optimized)?;
        let plan: Plan = optimized.into_runnable().map_err(planning_error)?;
        release_freed_memory();
        *slot = Some(plan.clone());
        Ok(plan)
    }

    /// Ops of the cached GPU plans that run on the CPU (`op (node)`), sorted, each once; empty on the CPU.
    pub(crate) fn host_ops(&self) -> Vec<String> {
        #[cfg(feature = "cuda-backend")]
        if self.gpu {
            let mut names = std::collections::BTreeSet::new();
            for slot in self.cached_slots() {
                let Ok(slot) = slot.try_lock() else { continue };
                for plan in slot.iter() {
                    names.extend(crate::device::host_ops(plan));
                }
            }
            return names.into_iter().collect();
        }
        Vec::new()
    }

    fn cached_slots(&self) -> Vec<PlanSlot> {
        let cache = self.plans.lock().unwrap_or_else(|p| p.into_inner());
        cache.plans.values().map(|(slot, _)| slot.clone()).collect()
    }

    /// Names of the matmul kernels of the cached plans, sorted and deduplicated; a plan being compiled
    /// is skipped rather than waited for.
    pub(crate) fn matmul_kernels(&self) -> Vec<String> {
        let mut names = std::collections::BTreeSet::new();
        for slot in self.cached_slots() {
            let Ok(slot) = slot.try_lock() else { continue };
            for node in slot.iter().flat_map(|plan| plan.model().nodes()) {
                if let Some(matmul) = node.op_as::<OptMatMul>() {
                    names.extend(matmul.mmm.iter().map(|k| k.name().to_string()));
                }
                if node.op_is::<super::fused::FusedProducts>() {
                    names.insert(super::fused::FusedProducts::KERNEL.to_string());
                }
            }
        }
        names.into_iter().collect()
    }
}
