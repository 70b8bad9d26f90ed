//! ggml's AMX kernels on every product a Whisper model has, against ggml's
//! own CPU path for the same q8_0 weights. Sori's patches (patches/whisper-rs-sys)
//! give the AMX buffer every q8_0 weight whose rows are a multiple of 64 values
//! (ggml as released asks 2048) and a padded copy of the vocabulary projection;
//! this checks that ggml would run each of those shapes on AMX and that AMX
//! gets the same numbers. On a CPU without AMX ggml offers no AMX buffer: the
//! test says so and has nothing to check.

use std::ffi::{c_void, CStr};
use std::ptr;

use whisper_rs_sys as sys;

/// Whisper's model widths: tiny, base, small, medium, large.
const WIDTHS: [i64; 5] = [384, 512, 768, 1024, 1280];
/// The multilingual vocabulary (51,865 tokens) padded to a multiple of 32, as
/// the vocabulary patch pads its copy.
const PADDED_VOCABULARY: i64 = 51_872;

/// A ggml context that holds tensor descriptions only (their data lives in
/// backend buffers); freed on drop.
struct Context(*mut sys::ggml_context);

impl Context {
    fn new(tensors: usize) -> Self {
        // SAFETY: plain constructor; no_alloc, so the memory asked is descriptions only.
        let ctx = unsafe {
            sys::ggml_init(sys::ggml_init_params {
                mem_size: tensors * sys::ggml_tensor_overhead() + sys::ggml_graph_overhead(),
                mem_buffer: ptr::null_mut(),
                no_alloc: true,
            })
        };
        assert!(!ctx.is_null(), "ggml_init failed");
        Self(ctx)
    }
}

impl Drop for Context {
    fn drop(&mut self) {
        // SAFETY: made by ggml_init, freed once.
        unsafe { sys::ggml_free(self.0) }
    }
}

/// A backend buffer holding a context's tensors; freed on drop.
struct Buffer(sys::ggml_backend_buffer_t);

impl Buffer {
    fn holding(ctx: &Context, buft: sys::ggml_backend_buffer_type_t) -> Self {
        // SAFETY: a live context and a buffer type from ggml's CPU device.
        let buffer = unsafe { sys::ggml_backend_alloc_ctx_tensors_from_buft(ctx.0, buft) };
        assert!(!buffer.is_null(), "could not allocate the tensors");
        Self(buffer)
    }
}

impl Drop for Buffer {
    fn drop(&mut self) {
        // SAFETY: allocated above, freed once.
        unsafe { sys::ggml_backend_buffer_free(self.0) }
    }
}

/// The CPU device and its AMX buffer type, if ggml offers one on this CPU.
fn amx_buffer_type() -> (sys::ggml_backend_dev_t, Option<sys::ggml_backend_buffer_type_t>) {
    // SAFETY: ggml's CPU registry lives for the process; the proc address, when
    // present, has the signature ggml-cpu declares for that name, and returns
    // a null-terminated list.
    unsafe {
        let reg = sys::ggml_backend_cpu_reg();
        let device = sys::ggml_backend_reg_dev_get(reg, 0);
        let get = sys::ggml_backend_reg_get_proc_address(reg, c"ggml_backend_dev_get_extra_bufts".as_ptr());
        if get.is_null() {
            return (device, None);
        }
        let get: unsafe extern "C" fn(sys::ggml_backend_dev_t) -> *mut sys::ggml_backend_buffer_type_t =
            std::mem::transmute(get);
        let mut next = get(device);
        while !next.is_null() && !(*next).is_null() {
            if CStr::from_ptr(sys::ggml_backend_buft_name(*next)).to_bytes() == b"AMX" {
                return (device, Some(*next));
            }
            next = next.add(1);
        }
        (device, None)
    }
}

/// `count` values in [-1, 1) from a fixed xorshift sequence.
fn values(count: usize, seed: u64) -> Vec<f32> {
    let mut state = seed | 1;
    (0..count)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 40) as f32 / (1u64 << 23) as f32 - 1.0
        })
        .collect()
}

/// `weights` (q8_0, `n` rows of `k` values) times `m` rows of `input`, with the
/// weights in a buffer of `buft`, on the CPU backend; and whether ggml's CPU
/// device says it runs that product with the weights there.
fn product(
    backend: sys::ggml_backend_t,
    device: sys::ggml_backend_dev_t,
    buft: sys::ggml_backend_buffer_type_t,
    weights: &[u8],
    input: &[f32],
    (k, n, m): (i64, i64, i64),
) -> (Vec<f32>, bool) {
    let weight_ctx = Context::new(1);
    let ctx = Context::new(2);
    // SAFETY: tensors described in live contexts, allocated in live buffers
    // before their data is set; the sizes passed are the tensors' own.
    unsafe {
        let w = sys::ggml_new_tensor_2d(weight_ctx.0, sys::ggml_type_GGML_TYPE_Q8_0, k, n);
        let _weight_buffer = Buffer::holding(&weight_ctx, buft);
        assert_eq!(sys::ggml_nbytes(w), weights.len());
        sys::ggml_backend_tensor_set(w, weights.as_ptr().cast::<c_void>(), 0, weights.len());
        let x = sys::ggml_new_tensor_2d(ctx.0, sys::ggml_type_GGML_TYPE_F32, k, m);
        let y = sys::ggml_mul_mat(ctx.0, w, x);
        let _buffer = Buffer::holding(&ctx, sys::ggml_backend_cpu_buffer_type());
        sys::ggml_backend_tensor_set(x, input.as_ptr().cast::<c_void>(), 0, std::mem::size_of_val(input));
        let supported = sys::ggml_backend_dev_supports_op(device, y);
        let graph = sys::ggml_new_graph(ctx.0);
        sys::ggml_build_forward_expand(graph, y);
        assert_eq!(
            sys::ggml_backend_graph_compute(backend, graph),
            sys::ggml_status_GGML_STATUS_SUCCESS
        );
        let mut out = vec![0f32; (n * m) as usize];
        sys::ggml_backend_tensor_get(y, out.as_mut_ptr().cast::<c_void>(), 0, std::mem::size_of_val(&out[..]));
        (out, supported)
    }
}

#[test]
fn amx_runs_every_whisper_q8_0_product_and_matches_ggmls_cpu_path() {
    let (device, Some(amx)) = amx_buffer_type() else {
        eprintln!("this CPU has no AMX (or the build does not use it): nothing to check");
        return;
    };
    // SAFETY: a CPU backend, freed at the end of the test.
    let backend = unsafe { sys::ggml_backend_cpu_init() };
    assert!(!backend.is_null());
    unsafe { sys::ggml_backend_cpu_set_n_threads(backend, 2) };
    let cpu = unsafe { sys::ggml_backend_cpu_buffer_type() };
    let mut shapes = Vec::new();
    for d in WIDTHS {
        // Attention projections, the MLP's two, and the vocabulary; with one
        // token (the decoder's step), a short prompt, and an encoder's context.
        for (k, n) in [(d, d), (d, 4 * d), (4 * d, d)] {
            for m in [1, 4, 256] {
                shapes.push((k, n, m));
            }
        }
        shapes.push((d, PADDED_VOCABULARY, 1));
        shapes.push((d, PADDED_VOCABULARY, 3));
    }
    for (i, &(k, n, m)) in shapes.iter().enumerate() {
        let weights_f32 = values((k * n) as usize, 2 * i as u64 + 1);
        let input = values((k * m) as usize, 2 * i as u64 + 2);
        let mut weights = vec![0u8; unsafe { sys::ggml_row_size(sys::ggml_type_GGML_TYPE_Q8_0, k) } * n as usize];
        // SAFETY: `weights` holds n rows of k q8_0 values; no importance matrix.
        let written = unsafe {
            sys::ggml_quantize_chunk(
                sys::ggml_type_GGML_TYPE_Q8_0,
                weights_f32.as_ptr(),
                weights.as_mut_ptr().cast::<c_void>(),
                0,
                n,
                k,
                ptr::null(),
            )
        };
        assert_eq!(written, weights.len());
        let (expected, _) = product(backend, device, cpu, &weights, &input, (k, n, m));
        let (got, on_amx) = product(backend, device, amx, &weights, &input, (k, n, m));
        assert!(on_amx, "ggml would not run {k}x{n} (x {m}) on AMX");
        let scale = expected.iter().fold(0f32, |a, v| a.max(v.abs()));
        let worst = expected.iter().zip(&got).fold(0f32, |a, (e, g)| a.max((e - g).abs()));
        assert!(
            scale > 1.0 && worst <= scale * 1e-5,
            "{k}x{n} (x {m}): AMX differs from the CPU path by {worst} (largest value {scale})"
        );
    }
    unsafe { sys::ggml_backend_free(backend) };
}
