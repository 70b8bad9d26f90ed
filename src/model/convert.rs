//! CTranslate2 Whisper model -> ggml tensors with OpenAI's PyTorch names.

use std::collections::BTreeSet;

use super::ct2::Ct2Model;
use super::ggml::{Hparams, Tensor, TensorType, WeightFormat};
use super::ModelError;

/// Everything a ggml file needs besides the vocabulary and mel filters.
pub struct Converted {
    pub hparams: Hparams,
    pub tensors: Vec<Tensor>,
}

/// Maps every variable of a CTranslate2 Whisper model to whisper.cpp's tensors.
pub fn convert(model: &Ct2Model, format: WeightFormat) -> Result<Converted, ModelError> {
    if model.spec != "WhisperSpec" {
        return Err(ModelError::invalid(format!("{} is not a Whisper model", model.spec)));
    }
    let hparams = hparams(model, format)?;
    let state = hparams.n_audio_state as usize;
    let mut out = TensorSink {
        format,
        tensors: Vec::new(),
    };

    out.push(model, "encoder.conv1.weight", "encoder/conv1/weight")?;
    out.push_conv_bias(model, "encoder.conv1.bias", "encoder/conv1/bias")?;
    out.push(model, "encoder.conv2.weight", "encoder/conv2/weight")?;
    out.push_conv_bias(model, "encoder.conv2.bias", "encoder/conv2/bias")?;
    out.push(
        model,
        "encoder.positional_embedding",
        "encoder/position_encodings/encodings",
    )?;
    for i in 0..hparams.n_audio_layer {
        let (pt, ct) = (format!("encoder.blocks.{i}"), format!("encoder/layer_{i}"));
        out.push_self_attention(model, &pt, &ct, state)?;
        out.push_mlp(model, &pt, &ct)?;
    }
    out.push_norm(model, "encoder.ln_post", "encoder/layer_norm")?;

    let text_state = hparams.n_text_state as usize;
    out.push(model, "decoder.token_embedding.weight", "decoder/embeddings/weight")?;
    out.push(
        model,
        "decoder.positional_embedding",
        "decoder/position_encodings/encodings",
    )?;
    for i in 0..hparams.n_text_layer {
        let (pt, ct) = (format!("decoder.blocks.{i}"), format!("decoder/layer_{i}"));
        out.push_self_attention(model, &pt, &ct, text_state)?;
        out.push_cross_attention(model, &pt, &ct, text_state)?;
        out.push_mlp(model, &pt, &ct)?;
    }
    out.push_norm(model, "decoder.ln", "decoder/layer_norm")?;

    Ok(Converted {
        hparams,
        tensors: out.tensors,
    })
}

fn hparams(model: &Ct2Model, format: WeightFormat) -> Result<Hparams, ModelError> {
    let dims = |name: &str| model.get(name).map(|v| v.dims.clone());
    let scalar = |name: &str| {
        model
            .get(name)?
            .scalar_i64()
            .ok_or_else(|| ModelError::invalid(format!("{name} is empty")))
    };
    let embeddings = dims("decoder/embeddings/weight")?;
    let audio_pos = dims("encoder/position_encodings/encodings")?;
    let text_pos = dims("decoder/position_encodings/encodings")?;
    let conv1 = dims("encoder/conv1/weight")?;
    if embeddings.len() != 2 || audio_pos.len() != 2 || text_pos.len() != 2 || conv1.len() != 3 {
        return Err(ModelError::invalid("unexpected tensor ranks for a Whisper model"));
    }
    let as_i32 = |v: usize| i32::try_from(v).map_err(|_| ModelError::invalid("dimension too large"));
    Ok(Hparams {
        n_vocab: as_i32(embeddings[0])?,
        n_audio_ctx: as_i32(audio_pos[0])?,
        n_audio_state: as_i32(audio_pos[1])?,
        n_audio_head: scalar("encoder/num_heads")? as i32,
        n_audio_layer: count_layers(model, "encoder/"),
        n_text_ctx: as_i32(text_pos[0])?,
        n_text_state: as_i32(text_pos[1])?,
        n_text_head: scalar("decoder/num_heads")? as i32,
        n_text_layer: count_layers(model, "decoder/"),
        n_mels: as_i32(conv1[1])?,
        ftype: format.ftype(),
    })
}

/// Counts `layer_<digits>/` prefixes (`encoder/layer_norm` is not a layer).
fn count_layers(model: &Ct2Model, prefix: &str) -> i32 {
    let indices: BTreeSet<u32> = model
        .variables
        .keys()
        .filter_map(|k| k.strip_prefix(prefix)?.strip_prefix("layer_"))
        .filter_map(|rest| rest.split_once('/')?.0.parse().ok())
        .collect();
    indices.len() as i32
}

struct TensorSink {
    format: WeightFormat,
    tensors: Vec<Tensor>,
}

impl TensorSink {
    /// Stores a tensor with the type whisper.cpp gives that tensor when it loads.
    fn store(&mut self, name: String, dims: Vec<usize>, data: Vec<f32>) {
        let f32_by_name = name.ends_with("positional_embedding");
        let ty = if dims.len() < 2 || f32_by_name {
            TensorType::F32
        } else if dims.len() == 3 {
            TensorType::F16 // convolutions stay f16 in quantized models too
        } else {
            self.format.matrix_type()
        };
        self.tensors.push(Tensor { name, dims, data, ty });
    }

    fn push(&mut self, model: &Ct2Model, pt: &str, ct: &str) -> Result<(), ModelError> {
        let v = model.get(ct)?;
        self.store(pt.to_string(), v.dims.clone(), model.dequantized(ct)?);
        Ok(())
    }

    /// Conv biases are 2-D `[n_state, 1]` f32 in whisper.cpp.
    fn push_conv_bias(&mut self, model: &Ct2Model, pt: &str, ct: &str) -> Result<(), ModelError> {
        let v = model.get(ct)?;
        self.tensors.push(Tensor {
            name: pt.to_string(),
            dims: vec![v.len(), 1],
            data: v.to_f32(),
            ty: TensorType::F32,
        });
        Ok(())
    }

    fn push_linear(&mut self, model: &Ct2Model, pt: &str, ct: &str) -> Result<(), ModelError> {
        self.push(model, &format!("{pt}.weight"), &format!("{ct}/weight"))?;
        self.push(model, &format!("{pt}.bias"), &format!("{ct}/bias"))
    }

    fn push_norm(&mut self, model: &Ct2Model, pt: &str, ct: &str) -> Result<(), ModelError> {
        self.push(model, &format!("{pt}.weight"), &format!("{ct}/gamma"))?;
        self.push(model, &format!("{pt}.bias"), &format!("{ct}/beta"))
    }

    /// Splits a row-stacked projection into `parts` equal matrices (and biases),
    /// storing those named in `names`; a `None` name is a key bias, which is dropped.
    fn push_stacked(&mut self, model: &Ct2Model, ct: &str, names: &[&str], state: usize) -> Result<(), ModelError> {
        let weight = model.get(&format!("{ct}/weight"))?;
        let bias = model.get(&format!("{ct}/bias"))?;
        let rows = names.len() * state;
        if weight.dims != [rows, state] || bias.dims != [rows] {
            return Err(ModelError::invalid(format!(
                "{ct} has shape {:?}, expected [{rows}, {state}]",
                weight.dims
            )));
        }
        let (w, b) = (model.dequantized(&format!("{ct}/weight"))?, bias.to_f32());
        for (i, pt) in names.iter().enumerate() {
            let rows = i * state..(i + 1) * state;
            self.store(
                format!("{pt}.weight"),
                vec![state, state],
                w[rows.start * state..rows.end * state].to_vec(),
            );
            if !pt.ends_with(".key") {
                self.store(format!("{pt}.bias"), vec![state], b[rows].to_vec());
            }
        }
        Ok(())
    }

    fn push_self_attention(&mut self, model: &Ct2Model, pt: &str, ct: &str, state: usize) -> Result<(), ModelError> {
        self.push_norm(
            model,
            &format!("{pt}.attn_ln"),
            &format!("{ct}/self_attention/layer_norm"),
        )?;
        let names = [
            format!("{pt}.attn.query"),
            format!("{pt}.attn.key"),
            format!("{pt}.attn.value"),
        ];
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        self.push_stacked(model, &format!("{ct}/self_attention/linear_0"), &names, state)?;
        self.push_linear(
            model,
            &format!("{pt}.attn.out"),
            &format!("{ct}/self_attention/linear_1"),
        )
    }

    fn push_cross_attention(&mut self, model: &Ct2Model, pt: &str, ct: &str, state: usize) -> Result<(), ModelError> {
        self.push_norm(
            model,
            &format!("{pt}.cross_attn_ln"),
            &format!("{ct}/attention/layer_norm"),
        )?;
        self.push_linear(
            model,
            &format!("{pt}.cross_attn.query"),
            &format!("{ct}/attention/linear_0"),
        )?;
        let names = [format!("{pt}.cross_attn.key"), format!("{pt}.cross_attn.value")];
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        self.push_stacked(model, &format!("{ct}/attention/linear_1"), &names, state)?;
        self.push_linear(
            model,
            &format!("{pt}.cross_attn.out"),
            &format!("{ct}/attention/linear_2"),
        )
    }

    fn push_mlp(&mut self, model: &Ct2Model, pt: &str, ct: &str) -> Result<(), ModelError> {
        self.push_norm(model, &format!("{pt}.mlp_ln"), &format!("{ct}/ffn/layer_norm"))?;
        self.push_linear(model, &format!("{pt}.mlp.0"), &format!("{ct}/ffn/linear_0"))?;
        self.push_linear(model, &format!("{pt}.mlp.2"), &format!("{ct}/ffn/linear_1"))
    }
}
