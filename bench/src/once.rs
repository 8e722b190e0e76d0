//! The measurements made once per run rather than once per round: those
//! that need fresh pools or fresh processes of their own (the unpinned
//! placement lottery, memory peaks, the largest workloads).

use crate::figures::Figures;
use crate::plan::Plan;
use crate::unpinned;

/// Every once-per-run figure, by [`crate::systems::System::index`].
pub fn measure(plan: &Plan, with_python: bool) -> [Figures; 6] {
    let mut figures: [Figures; 6] = Default::default();
    eprintln!(
        "procpool-bench: apply latency unpinned, {} fresh pools per system...",
        plan.unpinned_pools
    );
    unpinned::insert(unpinned::apply_latency(plan, with_python), &mut figures);
    figures
}
