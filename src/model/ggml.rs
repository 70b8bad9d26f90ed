//! The legacy whisper.cpp ggml model format: writing it, and checking a file
//! before whisper.cpp sees it (whisper.cpp aborts the process on some bad files).

use std::io::{self, Read, Write};

use super::ModelError;

/// `ggml` in ASCII, little-endian.
pub const MAGIC: u32 = 0x6767_6d6c;
/// whisper.cpp multiplies the quantization version by this and adds it to `ftype`.
const QNT_VERSION_FACTOR: i32 = 1000;
/// The quantization format version that whisper.cpp 1.8 writes and reads.
const QNT_VERSION: i32 = 2;

/// Model hyper-parameters, in the order of the file header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hparams {
    pub n_vocab: i32,
    pub n_audio_ctx: i32,
    pub n_audio_state: i32,
    pub n_audio_head: i32,
    pub n_audio_layer: i32,
    pub n_text_ctx: i32,
    pub n_text_state: i32,
    pub n_text_head: i32,
    pub n_text_layer: i32,
    pub n_mels: i32,
    pub ftype: i32,
}

impl Hparams {
    fn to_array(self) -> [i32; 11] {
        [
            self.n_vocab,
            self.n_audio_ctx,
            self.n_audio_state,
            self.n_audio_head,
            self.n_audio_layer,
            self.n_text_ctx,
            self.n_text_state,
            self.n_text_head,
            self.n_text_layer,
            self.n_mels,
            self.ftype,
        ]
    }

    fn from_array(a: [i32; 11]) -> Self {
        Self {
            n_vocab: a[0],
            n_audio_ctx: a[1],
            n_audio_state: a[2],
            n_audio_head: a[3],
            n_audio_layer: a[4],
            n_text_ctx: a[5],
            n_text_state: a[6],
            n_text_head: a[7],
            n_text_layer: a[8],
            n_mels: a[9],
            ftype: a[10],
        }
    }

    /// Whether the vocabulary is the multilingual one (as whisper.cpp decides it).
    pub fn is_multilingual(&self) -> bool {
        self.n_vocab >= 51865
    }

    /// How many tensors a complete model of this shape holds.
    pub fn expected_tensor_count(&self) -> usize {
        // Encoder: 2 convs (weight, bias), positional embedding, final norm (2).
        // Encoder block: attention norm 2, q/k/v/out 7, mlp norm 2, mlp 4.
        // Decoder: token + positional embedding, final norm 2.
        // Decoder block: the encoder block's 15 plus cross-attention norm 2 and q/k/v/out 7.
        7 + 15 * self.n_audio_layer as usize + 4 + 24 * self.n_text_layer as usize
    }
}

/// Storage type of one tensor (ggml's type ids).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TensorType {
    F32,
    F16,
    Q4_0,
    Q4_1,
    Q5_0,
    Q5_1,
    Q8_0,
}

impl TensorType {
    /// ggml's numeric id.
    pub fn id(self) -> i32 {
        match self {
            Self::F32 => 0,
            Self::F16 => 1,
            Self::Q4_0 => 2,
            Self::Q4_1 => 3,
            Self::Q5_0 => 6,
            Self::Q5_1 => 7,
            Self::Q8_0 => 8,
        }
    }

    fn from_id(id: i32) -> Option<Self> {
        [
            Self::F32,
            Self::F16,
            Self::Q4_0,
            Self::Q4_1,
            Self::Q5_0,
            Self::Q5_1,
            Self::Q8_0,
        ]
        .into_iter()
        .find(|t| t.id() == id)
    }

    /// (elements per block, bytes per block).
    fn block(self) -> (usize, usize) {
        match self {
            Self::F32 => (1, 4),
            Self::F16 => (1, 2),
            Self::Q4_0 => (32, 18),
            Self::Q4_1 => (32, 20),
            Self::Q5_0 => (32, 22),
            Self::Q5_1 => (32, 24),
            Self::Q8_0 => (32, 34),
        }
    }

    /// Bytes that `elements` values take, if `row_len` fits the block size.
    fn byte_size(self, row_len: usize, elements: usize) -> Option<usize> {
        let (per_block, bytes) = self.block();
        row_len.is_multiple_of(per_block).then(|| elements / per_block * bytes)
    }
}

/// The weight format of a whole model file, as `sori model` can write it.
/// q8_0 is the default: on every clip measured (BENCHMARKS.md) it gave the
/// words of f16, 10 to 25 % faster and with 35 to 40 % less memory.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum WeightFormat {
    /// Half precision: the reference accuracy.
    F16,
    /// 8-bit blocks: about half the size and faster on CPUs, same words in practice.
    #[default]
    #[value(name = "q8_0")]
    Q8_0,
    /// 5-bit blocks with an offset: three quarters of q8_0's size, but slower
    /// than q8_0 on the x86 CPUs measured (BENCHMARKS.md).
    #[value(name = "q5_1")]
    Q5_1,
    /// 4-bit blocks: about a quarter of the size; check accuracy on your audio.
    #[value(name = "q4_0")]
    Q4_0,
}

impl WeightFormat {
    /// The `ftype` header value whisper.cpp expects for this format.
    pub fn ftype(self) -> i32 {
        match self {
            Self::F16 => 1,
            Self::Q8_0 => 7 + QNT_VERSION_FACTOR * QNT_VERSION,
            Self::Q5_1 => 9 + QNT_VERSION_FACTOR * QNT_VERSION,
            Self::Q4_0 => 2 + QNT_VERSION_FACTOR * QNT_VERSION,
        }
    }

    /// The storage type of the model's matrices.
    pub fn matrix_type(self) -> TensorType {
        match self {
            Self::F16 => TensorType::F16,
            Self::Q8_0 => TensorType::Q8_0,
            Self::Q5_1 => TensorType::Q5_1,
            Self::Q4_0 => TensorType::Q4_0,
        }
    }

    /// The suffix used in file names (`ggml-base-q8_0.bin`).
    pub fn suffix(self) -> &'static str {
        match self {
            Self::F16 => "",
            Self::Q8_0 => "-q8_0",
            Self::Q5_1 => "-q5_1",
            Self::Q4_0 => "-q4_0",
        }
    }
}

/// One tensor ready to write, with its PyTorch name and numpy-order dims.
pub struct Tensor {
    pub name: String,
    pub dims: Vec<usize>,
    pub data: Vec<f32>,
    pub ty: TensorType,
}

/// Writes a complete ggml model file.
pub fn write_model<W: Write>(
    out: &mut W,
    hparams: &Hparams,
    mel_filters: &[f32],
    tokens: &[Vec<u8>],
    tensors: &[Tensor],
) -> io::Result<()> {
    out.write_all(&MAGIC.to_le_bytes())?;
    for v in hparams.to_array() {
        out.write_all(&v.to_le_bytes())?;
    }
    let n_bins = mel_filters.len() / hparams.n_mels as usize;
    out.write_all(&hparams.n_mels.to_le_bytes())?;
    out.write_all(&(n_bins as i32).to_le_bytes())?;
    write_f32s(out, mel_filters)?;
    out.write_all(&(tokens.len() as i32).to_le_bytes())?;
    for token in tokens {
        out.write_all(&(token.len() as u32).to_le_bytes())?;
        out.write_all(token)?;
    }
    for tensor in tensors {
        write_tensor(out, tensor)?;
    }
    Ok(())
}

fn write_tensor<W: Write>(out: &mut W, t: &Tensor) -> io::Result<()> {
    out.write_all(&(t.dims.len() as i32).to_le_bytes())?;
    out.write_all(&(t.name.len() as i32).to_le_bytes())?;
    out.write_all(&t.ty.id().to_le_bytes())?;
    for d in t.dims.iter().rev() {
        out.write_all(&(*d as i32).to_le_bytes())?;
    }
    out.write_all(t.name.as_bytes())?;
    match t.ty {
        TensorType::F32 => write_f32s(out, &t.data),
        TensorType::F16 => {
            let bytes: Vec<u8> = t
                .data
                .iter()
                .flat_map(|v| half::f16::from_f32(*v).to_le_bytes())
                .collect();
            out.write_all(&bytes)
        }
        TensorType::Q8_0 => out.write_all(&quantize_q8_0(&t.data)),
        TensorType::Q5_1 => out.write_all(&quantize_q5_1(&t.data)),
        TensorType::Q4_0 => out.write_all(&quantize_q4_0(&t.data)),
        other => Err(io::Error::new(
            io::ErrorKind::Unsupported,
            format!("cannot write {other:?}"),
        )),
    }
}

fn write_f32s<W: Write>(out: &mut W, values: &[f32]) -> io::Result<()> {
    let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    out.write_all(&bytes)
}

/// ggml's Q8_0: blocks of 32 values as one f16 scale and 32 signed bytes.
pub fn quantize_q8_0(values: &[f32]) -> Vec<u8> {
    let mut out = Vec::with_capacity(values.len() / 32 * 34);
    for block in values.chunks(32) {
        let amax = block.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        let d = amax / 127.0;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        out.extend_from_slice(&half::f16::from_f32(d).to_le_bytes());
        out.extend(block.iter().map(|v| (v * id).round() as i8 as u8));
    }
    out
}

/// ggml's Q4_0: blocks of 32 values as one f16 scale and 16 bytes of nibbles
/// (value j in the low nibble of byte j, value j + 16 in its high nibble).
pub fn quantize_q4_0(values: &[f32]) -> Vec<u8> {
    let mut out = Vec::with_capacity(values.len() / 32 * 18);
    for block in values.chunks(32) {
        // The scale maps the value of largest magnitude, with its sign, to -8.
        let max = block.iter().fold(0.0f32, |m, v| if v.abs() > m.abs() { *v } else { m });
        let d = max / -8.0;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        out.extend_from_slice(&half::f16::from_f32(d).to_le_bytes());
        let nibble = |v: f32| ((v * id + 8.5) as i8).clamp(0, 15) as u8;
        out.extend((0..16).map(|j| nibble(block[j]) | (nibble(block[j + 16]) << 4)));
    }
    out
}

/// ggml's Q5_1: blocks of 32 values as an f16 step and an f16 minimum, the
/// fifth bits of the 32 values in one little-endian u32, then 16 bytes of low
/// nibbles (value j in the low nibble of byte j, value j + 16 in its high nibble).
pub fn quantize_q5_1(values: &[f32]) -> Vec<u8> {
    let mut out = Vec::with_capacity(values.len() / 32 * 24);
    for block in values.chunks(32) {
        let min = block.iter().copied().fold(f32::INFINITY, f32::min);
        let max = block.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let d = (max - min) / 31.0;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        out.extend_from_slice(&half::f16::from_f32(d).to_le_bytes());
        out.extend_from_slice(&half::f16::from_f32(min).to_le_bytes());
        let level: Vec<u8> = block.iter().map(|v| ((v - min) * id + 0.5) as u8).collect();
        let high_bits = (0..32).fold(0u32, |bits, j| bits | (u32::from(level[j] >> 4) & 1) << j);
        out.extend_from_slice(&high_bits.to_le_bytes());
        out.extend((0..16).map(|j| (level[j] & 0x0F) | ((level[j + 16] & 0x0F) << 4)));
    }
    out
}

/// What a checked model file holds.
#[derive(Debug, Clone)]
pub struct ModelInfo {
    pub hparams: Hparams,
    pub tensor_count: usize,
}

/// The mel filterbank stored in a model file: `n_mel` rows of `n_bins` weights.
#[derive(Debug, Clone)]
pub struct MelFilters {
    pub n_mel: usize,
    pub n_bins: usize,
    pub weights: Vec<f32>,
}

/// Reads the start of a ggml file (magic, hyper-parameters, mel filters).
fn read_header<R: Read>(r: &mut R) -> Result<(Hparams, MelFilters), ModelError> {
    let magic = read_i32(r)? as u32;
    if magic != MAGIC {
        return Err(ModelError::invalid("not a ggml whisper model (wrong magic number)"));
    }
    let mut raw = [0i32; 11];
    for v in raw.iter_mut() {
        *v = read_i32(r)?;
    }
    let hp = Hparams::from_array(raw);
    check_hparams(&hp)?;
    let n_mel = read_i32(r)?;
    let n_bins = read_i32(r)?;
    if n_mel != hp.n_mels || !(1..=1024).contains(&n_bins) {
        return Err(ModelError::invalid("the mel filter table does not match the model"));
    }
    let (n_mel, n_bins) = (n_mel as usize, n_bins as usize);
    let mut bytes = vec![0u8; n_mel * n_bins * 4];
    r.read_exact(&mut bytes).map_err(truncated)?;
    let weights = bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    Ok((hp, MelFilters { n_mel, n_bins, weights }))
}

/// The mel filterbank of a ggml model file (read from its header only).
pub fn read_mel_filters<R: Read>(mut input: R) -> Result<MelFilters, ModelError> {
    Ok(read_header(&mut input)?.1)
}

/// Reads a ggml file from start to end and checks that whisper.cpp can load it:
/// magic, sane hyper-parameters, not all-f32, every tensor's size, nothing missing.
pub fn check_model<R: Read>(input: R) -> Result<ModelInfo, ModelError> {
    let mut r = io::BufReader::with_capacity(1 << 20, input);
    let (hp, _) = read_header(&mut r)?;
    let n_tokens = read_i32(&mut r)?;
    if !(1..=hp.n_vocab).contains(&n_tokens) {
        return Err(ModelError::invalid(format!(
            "token count {n_tokens} does not fit n_vocab {}",
            hp.n_vocab
        )));
    }
    for _ in 0..n_tokens {
        let len = read_i32(&mut r)?;
        if !(0..=256).contains(&len) {
            return Err(ModelError::invalid("a vocabulary entry has an impossible length"));
        }
        skip(&mut r, len as u64)?;
    }
    let mut tensor_count = 0;
    while let Some(n_dims) = read_i32_or_eof(&mut r)? {
        check_tensor(&mut r, n_dims)?;
        tensor_count += 1;
    }
    if tensor_count != hp.expected_tensor_count() {
        return Err(ModelError::invalid(format!(
            "the model holds {tensor_count} tensors, whisper.cpp expects {}",
            hp.expected_tensor_count()
        )));
    }
    Ok(ModelInfo {
        hparams: hp,
        tensor_count,
    })
}

fn check_hparams(hp: &Hparams) -> Result<(), ModelError> {
    let in_range = |v: i32, lo: i32, hi: i32| (lo..=hi).contains(&v);
    let sane = in_range(hp.n_vocab, 51864, 51866)
        && in_range(hp.n_audio_ctx, 1, 1500)
        && in_range(hp.n_audio_state, 64, 4096)
        && in_range(hp.n_audio_head, 1, 64)
        && in_range(hp.n_audio_layer, 1, 64)
        && in_range(hp.n_text_ctx, 1, 448)
        && in_range(hp.n_text_state, 64, 4096)
        && in_range(hp.n_text_head, 1, 64)
        && in_range(hp.n_text_layer, 1, 64)
        && (hp.n_mels == 80 || hp.n_mels == 128)
        && hp.n_audio_state % hp.n_audio_head == 0
        && hp.n_text_state % hp.n_text_head == 0;
    if !sane {
        return Err(ModelError::invalid(format!(
            "implausible whisper hyper-parameters: {hp:?}"
        )));
    }
    let base_ftype = hp.ftype % QNT_VERSION_FACTOR;
    if base_ftype == 0 {
        return Err(ModelError::invalid(
            "all-f32 models crash whisper.cpp 1.8; convert with f16 or q8_0 weights",
        ));
    }
    if !matches!(base_ftype, 1..=3 | 7..=9) {
        return Err(ModelError::invalid(format!("unknown weight type (ftype {})", hp.ftype)));
    }
    Ok(())
}

fn check_tensor<R: Read>(r: &mut R, n_dims: i32) -> Result<(), ModelError> {
    let name_len = read_i32(r)?;
    let ty = read_i32(r)?;
    if !(1..=4).contains(&n_dims) || !(1..=256).contains(&name_len) {
        return Err(ModelError::invalid("a tensor header is malformed"));
    }
    let ty = TensorType::from_id(ty).ok_or_else(|| ModelError::invalid(format!("unknown tensor type {ty}")))?;
    let mut dims = Vec::with_capacity(n_dims as usize);
    for _ in 0..n_dims {
        let d = read_i32(r)?;
        if !(1..=1 << 20).contains(&d) {
            return Err(ModelError::invalid("a tensor has an impossible dimension"));
        }
        dims.push(d as usize);
    }
    let mut name = vec![0; name_len as usize];
    r.read_exact(&mut name).map_err(truncated)?;
    let name = String::from_utf8_lossy(&name);
    let elements: usize = dims.iter().product();
    let bytes = ty
        .byte_size(dims[0], elements)
        .ok_or_else(|| ModelError::invalid(format!("tensor {name}: rows do not fit {ty:?} blocks")))?;
    skip(r, bytes as u64)
}

fn truncated(_: io::Error) -> ModelError {
    ModelError::invalid("the model file ends too early (truncated download?)")
}

fn read_i32<R: Read>(r: &mut R) -> Result<i32, ModelError> {
    let mut b = [0; 4];
    r.read_exact(&mut b).map_err(truncated)?;
    Ok(i32::from_le_bytes(b))
}

fn read_i32_or_eof<R: Read>(r: &mut R) -> Result<Option<i32>, ModelError> {
    let mut b = [0; 4];
    let mut filled = 0;
    while filled < 4 {
        match r.read(&mut b[filled..]) {
            Ok(0) if filled == 0 => return Ok(None),
            Ok(0) => return Err(truncated(io::ErrorKind::UnexpectedEof.into())),
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(truncated(e)),
        }
    }
    Ok(Some(i32::from_le_bytes(b)))
}

fn skip<R: Read>(r: &mut R, n: u64) -> Result<(), ModelError> {
    let copied = io::copy(&mut r.by_ref().take(n), &mut io::sink()).map_err(truncated)?;
    if copied != n {
        return Err(truncated(io::ErrorKind::UnexpectedEof.into()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn q8_0_round_trips_within_one_step() {
        let values: Vec<f32> = (0..64).map(|i| (i as f32 - 31.5) / 7.0).collect();
        let q = quantize_q8_0(&values);
        assert_eq!(q.len(), 2 * 34);
        for (b, block) in q.chunks(34).zip(values.chunks(32)) {
            let d = half::f16::from_le_bytes([b[0], b[1]]).to_f32();
            for (byte, v) in b[2..].iter().zip(block) {
                assert!(((*byte as i8) as f32 * d - v).abs() <= d * 0.51 + 1e-3);
            }
        }
    }

    /// Value `j`'s nibble in a block's 16 bytes of nibbles (values 0-15 low, 16-31 high).
    fn nibble(nibbles: &[u8], j: usize) -> u8 {
        let byte = nibbles[j % 16];
        if j < 16 {
            byte & 0x0F
        } else {
            byte >> 4
        }
    }

    #[test]
    fn q4_0_round_trips_within_one_step() {
        let values: Vec<f32> = (0..64).map(|i| ((i * 7 % 32) as f32 - 15.0) / 3.0).collect();
        let q = quantize_q4_0(&values);
        assert_eq!(q.len(), 2 * 18);
        for (b, block) in q.chunks(18).zip(values.chunks(32)) {
            let d = half::f16::from_le_bytes([b[0], b[1]]).to_f32();
            for (j, value) in block.iter().enumerate() {
                let restored = (nibble(&b[2..], j) as f32 - 8.0) * d;
                assert!(
                    (restored - value).abs() <= d.abs() * 0.51 + 1e-3,
                    "{j}: {restored} vs {value}"
                );
            }
        }
    }

    #[test]
    fn q5_1_round_trips_within_one_step() {
        let values: Vec<f32> = (0..64).map(|i| ((i * 11 % 32) as f32 - 9.0) / 5.0).collect();
        let q = quantize_q5_1(&values);
        assert_eq!(q.len(), 2 * 24);
        for (b, block) in q.chunks(24).zip(values.chunks(32)) {
            let d = half::f16::from_le_bytes([b[0], b[1]]).to_f32();
            let min = half::f16::from_le_bytes([b[2], b[3]]).to_f32();
            let high_bits = u32::from_le_bytes([b[4], b[5], b[6], b[7]]);
            for (j, value) in block.iter().enumerate() {
                let level = nibble(&b[8..], j) as u32 | ((high_bits >> j) & 1) << 4;
                let restored = level as f32 * d + min;
                assert!(
                    (restored - value).abs() <= d * 0.51 + 1e-2,
                    "{j}: {restored} vs {value}"
                );
            }
        }
    }

    #[test]
    fn rejects_wrong_magic_and_all_f32() {
        assert!(check_model(&b"RIFF0000WAVEfmt "[..]).is_err());
        let mut file = MAGIC.to_le_bytes().to_vec();
        for v in [51864i32, 1500, 384, 6, 4, 448, 384, 6, 4, 80, 0] {
            file.extend_from_slice(&v.to_le_bytes());
        }
        let err = check_model(&file[..]).unwrap_err().to_string();
        assert!(err.contains("f32"), "{err}");
    }
}
