//! Reader for CTranslate2 `model.bin` files (the format faster-whisper ships).

use std::collections::BTreeMap;

use super::ModelError;

/// Element type of a CTranslate2 variable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ct2Dtype {
    F32,
    I8,
    I16,
    I32,
    F16,
    Bf16,
}

impl Ct2Dtype {
    fn from_code(code: u8) -> Result<Self, ModelError> {
        Ok(match code {
            0 => Self::F32,
            1 => Self::I8,
            2 => Self::I16,
            3 => Self::I32,
            4 => Self::F16,
            5 => Self::Bf16,
            other => return Err(ModelError::invalid(format!("unknown CTranslate2 dtype code {other}"))),
        })
    }

    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            Self::I8 => 1,
            Self::I16 | Self::F16 | Self::Bf16 => 2,
            Self::F32 | Self::I32 => 4,
        }
    }
}

/// One named tensor of a CTranslate2 model.
#[derive(Debug, Clone)]
pub struct Variable {
    /// Dimensions, outermost first (row-major, as numpy shows them).
    pub dims: Vec<usize>,
    /// Element type of `data`.
    pub dtype: Ct2Dtype,
    /// Raw little-endian element bytes.
    pub data: Vec<u8>,
}

impl Variable {
    /// Number of elements.
    pub fn len(&self) -> usize {
        self.dims.iter().product()
    }

    /// Whether the variable holds no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The elements as f32, whatever the stored float type (integers are converted as-is).
    pub fn to_f32(&self) -> Vec<f32> {
        let d = &self.data;
        match self.dtype {
            Ct2Dtype::F32 => d
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect(),
            Ct2Dtype::F16 => d
                .chunks_exact(2)
                .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32())
                .collect(),
            Ct2Dtype::Bf16 => d
                .chunks_exact(2)
                .map(|b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32())
                .collect(),
            Ct2Dtype::I8 => d.iter().map(|&b| b as i8 as f32).collect(),
            Ct2Dtype::I16 => d
                .chunks_exact(2)
                .map(|b| i16::from_le_bytes([b[0], b[1]]) as f32)
                .collect(),
            Ct2Dtype::I32 => d
                .chunks_exact(4)
                .map(|b| i32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f32)
                .collect(),
        }
    }

    /// The first element as an integer (for scalar settings such as `num_heads`).
    pub fn scalar_i64(&self) -> Option<i64> {
        self.to_f32().first().map(|v| *v as i64)
    }
}

/// A parsed CTranslate2 model: its spec name and variables by name, aliases resolved.
#[derive(Debug)]
pub struct Ct2Model {
    /// The spec name, e.g. `WhisperSpec`.
    pub spec: String,
    /// Variables by their full name, e.g. `encoder/layer_0/ffn/linear_0/weight`.
    pub variables: BTreeMap<String, Variable>,
}

impl Ct2Model {
    /// Parses a whole `model.bin`. Every length is checked against the bytes present,
    /// so a truncated or hostile file gives an error, never a panic.
    pub fn parse(bytes: &[u8]) -> Result<Self, ModelError> {
        let mut r = Cursor { bytes, pos: 0 };
        let version = r.u32()?;
        if !(5..=6).contains(&version) {
            return Err(ModelError::invalid(format!(
                "CTranslate2 binary version {version} is not supported (expected 5 or 6)"
            )));
        }
        let spec = r.string()?;
        let _revision = r.u32()?;
        let count = r.u32()? as usize;
        let mut variables = BTreeMap::new();
        for _ in 0..count {
            let name = r.string()?;
            let rank = r.u8()? as usize;
            let dims = (0..rank)
                .map(|_| r.u32().map(|d| d as usize))
                .collect::<Result<Vec<_>, _>>()?;
            let dtype = Ct2Dtype::from_code(r.u8()?)?;
            let byte_count = r.u32()? as usize;
            let elements: usize = dims.iter().product();
            if elements.checked_mul(dtype.size()) != Some(byte_count) {
                return Err(ModelError::invalid(format!(
                    "variable {name}: {byte_count} bytes do not match dims {dims:?}"
                )));
            }
            let data = r.take(byte_count)?.to_vec();
            variables.insert(name, Variable { dims, dtype, data });
        }
        let alias_count = r.u32()? as usize;
        for _ in 0..alias_count {
            let alias = r.string()?;
            let target = r.string()?;
            if let Some(v) = variables.get(&target).cloned() {
                variables.entry(alias).or_insert(v);
            }
        }
        Ok(Self { spec, variables })
    }

    /// The values of `name` as f32; int8 weights are scaled back with their
    /// per-row `weight_scale` (CTranslate2 stores `round(w * scale)`).
    pub fn dequantized(&self, name: &str) -> Result<Vec<f32>, ModelError> {
        let var = self.get(name)?;
        let mut values = var.to_f32();
        if var.dtype == Ct2Dtype::I8 {
            let scale_name = format!("{}_scale", name);
            let scales = self.get(&scale_name)?.to_f32();
            let row = var.dims.last().copied().unwrap_or(1).max(1);
            if scales.len() * row != values.len() {
                return Err(ModelError::invalid(format!("{scale_name} does not match {name}")));
            }
            for (chunk, scale) in values.chunks_mut(row).zip(scales) {
                chunk.iter_mut().for_each(|v| *v /= scale);
            }
        }
        Ok(values)
    }

    /// The variable called `name`, or an error naming it.
    pub fn get(&self, name: &str) -> Result<&Variable, ModelError> {
        self.variables
            .get(name)
            .ok_or_else(|| ModelError::invalid(format!("the model has no variable {name}")))
    }
}

/// A bounds-checked little-endian reader.
struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], ModelError> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.bytes.len());
        let end = end.ok_or_else(|| ModelError::invalid("the CTranslate2 file ends too early"))?;
        let out = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    fn u8(&mut self) -> Result<u8, ModelError> {
        Ok(self.take(1)?[0])
    }

    fn u32(&mut self) -> Result<u32, ModelError> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// A u16 length (counting a trailing NUL), then the bytes.
    fn string(&mut self) -> Result<String, ModelError> {
        let b = self.take(2)?;
        let len = u16::from_le_bytes([b[0], b[1]]) as usize;
        let raw = self.take(len)?;
        let raw = raw.strip_suffix(&[0]).unwrap_or(raw);
        String::from_utf8(raw.to_vec()).map_err(|_| ModelError::invalid("a variable name is not UTF-8"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn string(out: &mut Vec<u8>, s: &str) {
        out.extend_from_slice(&((s.len() + 1) as u16).to_le_bytes());
        out.extend_from_slice(s.as_bytes());
        out.push(0);
    }

    fn sample_file() -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&6u32.to_le_bytes());
        string(&mut out, "WhisperSpec");
        out.extend_from_slice(&3u32.to_le_bytes());
        out.extend_from_slice(&1u32.to_le_bytes());
        string(&mut out, "a/weight");
        out.push(2);
        out.extend_from_slice(&2u32.to_le_bytes());
        out.extend_from_slice(&1u32.to_le_bytes());
        out.push(4);
        out.extend_from_slice(&4u32.to_le_bytes());
        out.extend_from_slice(&half::f16::from_f32(1.5).to_le_bytes());
        out.extend_from_slice(&half::f16::from_f32(-2.0).to_le_bytes());
        out.extend_from_slice(&1u32.to_le_bytes());
        string(&mut out, "b/weight");
        string(&mut out, "a/weight");
        out
    }

    #[test]
    fn parses_variables_and_aliases() {
        let model = Ct2Model::parse(&sample_file()).unwrap();
        assert_eq!(model.spec, "WhisperSpec");
        let a = model.get("a/weight").unwrap();
        assert_eq!(a.dims, vec![2, 1]);
        assert_eq!(a.to_f32(), vec![1.5, -2.0]);
        assert_eq!(model.get("b/weight").unwrap().to_f32(), vec![1.5, -2.0]);
    }

    #[test]
    fn every_truncation_is_an_error_not_a_panic() {
        let file = sample_file();
        for cut in 0..file.len() {
            assert!(Ct2Model::parse(&file[..cut]).is_err(), "cut at {cut} parsed");
        }
    }
}
