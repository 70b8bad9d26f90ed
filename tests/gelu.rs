//! ggml's GELU (every Whisper MLP's activation) 16 values at a time, as Sori's
//! patch (patches/whisper-rs-sys) runs it on CPUs with AVX-512, against the
//! one-value-at-a-time loop it replaces: the same bits for every value, on
//! either side of every f16 rounding and limit. Both go through ggml itself:
//! rows of 16 values take the 16-wide path, rows of 15 the loop left for the
//! tail. Without AVX-512 both are the loop, and the check against GELU's own
//! formula is what is left.

use std::ptr;

use half::f16;
use whisper_rs_sys as sys;

/// Inputs come in a multiple of this many values, so that rows of 16 and rows
/// of 15 both hold all of them.
const ROWS_OF_16_AND_15: usize = 240;

/// ggml's GELU of `values` computed in rows of `row` values; `values.len()`
/// must be a multiple of `row`.
fn ggml_gelu(values: &[f32], row: usize) -> Vec<f32> {
    assert_eq!(values.len() % row, 0);
    let bytes = 2 * values.len() * size_of::<f32>();
    // SAFETY: one context with room for both tensors and the graph, used and
    // freed here; the tensors are contiguous f32 of `values.len()` elements.
    unsafe {
        sys::ggml_cpu_init();
        let ctx = sys::ggml_init(sys::ggml_init_params {
            mem_size: bytes + 8 * sys::ggml_tensor_overhead() + sys::ggml_graph_overhead() + 4096,
            mem_buffer: ptr::null_mut(),
            no_alloc: false,
        });
        assert!(!ctx.is_null(), "ggml_init failed");
        let rows = (values.len() / row) as i64;
        let x = sys::ggml_new_tensor_2d(ctx, sys::ggml_type_GGML_TYPE_F32, row as i64, rows);
        ptr::copy_nonoverlapping(values.as_ptr(), (*x).data.cast::<f32>(), values.len());
        let y = sys::ggml_gelu(ctx, x);
        let graph = sys::ggml_new_graph(ctx);
        sys::ggml_build_forward_expand(graph, y);
        let status = sys::ggml_graph_compute_with_ctx(ctx, graph, 1);
        assert_eq!(status, sys::ggml_status_GGML_STATUS_SUCCESS);
        let out = std::slice::from_raw_parts((*y).data.cast::<f32>(), values.len()).to_vec();
        sys::ggml_free(ctx);
        out
    }
}

/// GELU with the tanh approximation, in f64.
fn gelu(x: f64) -> f64 {
    0.5 * x * (1.0 + ((2.0 / std::f64::consts::PI).sqrt() * (x + 0.044715 * x.powi(3))).tanh())
}

/// Every finite f16 value, the f32 values halfway between neighbouring f16
/// values (where rounding to f16 must break ties as the loop does), values
/// just around the loop's limits of -10 and 10, and the infinities; padded
/// with zeros to a multiple of `ROWS_OF_16_AND_15`.
fn inputs() -> Vec<f32> {
    let half = |bits: u16| f16::from_bits(bits).to_f32();
    let mut values: Vec<f32> = (0..=u16::MAX).map(half).filter(|v| v.is_finite()).collect();
    let halves: Vec<f32> = (0..0x7bffu16)
        .flat_map(|bits| {
            let mid = (half(bits) + half(bits + 1)) / 2.0;
            [mid, -mid]
        })
        .collect();
    values.extend(halves);
    // 64 f32 steps on either side of 10, with their negatives.
    for step in [1, -1] {
        let mut v = 10.0f32;
        for _ in 0..64 {
            values.extend([v, -v]);
            v = f32::from_bits(v.to_bits().wrapping_add_signed(step));
        }
    }
    values.extend([f32::INFINITY, f32::NEG_INFINITY]);
    values.resize(values.len().div_ceil(ROWS_OF_16_AND_15) * ROWS_OF_16_AND_15, 0.0);
    values
}

#[test]
fn gelu_sixteen_at_a_time_gives_the_loops_bits_for_every_value() {
    let values = inputs();
    let wide = ggml_gelu(&values, 16);
    let narrow = ggml_gelu(&values, 15);
    let differing: Vec<_> = values
        .iter()
        .zip(wide.iter().zip(&narrow))
        .filter(|(_, (w, n))| w.to_bits() != n.to_bits())
        .take(5)
        .collect();
    assert!(
        differing.is_empty(),
        "x, 16 at a time, one at a time: {differing:?} (of {} values)",
        values.len()
    );
    println!("{} values, bit for bit", values.len());
}

#[test]
fn gelu_matches_its_formula_within_f16_rounding() {
    let values: Vec<f32> = inputs().into_iter().filter(|v| v.is_finite()).collect();
    let values = &values[..values.len() / 16 * 16];
    for (x, y) in values.iter().zip(ggml_gelu(values, 16)) {
        let (x, y) = (f64::from(*x), f64::from(y));
        let expected = gelu(x);
        // Beyond the limits ggml gives 0 or x; inside, the input and the
        // table entry are both rounded to f16 (2^-11 each).
        let allowed = if x.abs() >= 10.0 {
            1e-6 * x.abs()
        } else {
            2e-3 * x.abs().max(1e-3) + 1e-7
        };
        assert!((y - expected).abs() <= allowed, "gelu({x}) = {y}, expected {expected}");
    }
}
