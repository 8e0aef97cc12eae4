// longvq.load and the Model: config, info, tokenizer, classify (engine/serving/classifier.h),
// classify_jsonl (the CLI's tools/cli/classify_job.h) and perplexity (tools/cli/perplexity_score.h).
#include <algorithm>
#include <fstream>
#include <sstream>

#include "binding.h"
#include "engine/serving/sampler.h"
#include "tools/cli/classify_job.h"
#include "tools/cli/common.h"
#include "tools/cli/perplexity_score.h"
#include "tools/cli/system_info.h"

namespace longvq::py_binding {

namespace {

ModelPtr load(py::object path, const std::string& backend, int threads, bool mmap) {
  if (backend != "auto" && backend != "cpu" && backend != "cuda")
    throw py::value_error("unknown backend '" + backend + "': use 'auto', 'cpu' or 'cuda'");
  if (threads < 0) throw py::value_error("threads must be >= 0 (0 = all cores), got " + std::to_string(threads));
  cli::ModelFlags flags;  // the CLI's loading: -m PATH, --backend, --no-mmap
  if (!path.is_none()) flags.model = to_path(path, "path");
  flags.backend = backend;
  flags.threads = threads;
  flags.no_mmap = !mmap;
  std::shared_ptr<const Model> model;
  std::string dir;
  {
    py::gil_scoped_release nogil;
    dir = cli::resolve_model_dir(flags).string();
    model = cli::load_model(flags);
  }
  std::ifstream f(model->dir() / "config.json", std::ios::binary);
  std::stringstream cfg;
  cfg << f.rdbuf();
  return std::make_shared<ModelHandle>(model, dir, threads, mmap, cfg.str());
}

py::dict info(const ModelHandle& h) {
  const ModelConfig& c = h.config();
  py::dict d;
  d["path"] = h.path;
  d["task"] = std::string(to_string(c.task));
  d["fingerprint"] = c.fingerprint();
  d["parameters"] = h.model->parameter_count();
  d["vocab_size"] = c.vocab_size;
  d["num_classes"] = c.classifier ? py::object(py::int_(c.classifier->num_classes)) : py::object(py::none());
  d["state_bytes_per_row"] = h.is_lm() ? py::object(py::int_(cli::state_bytes_formula(c))) : py::object(py::none());
  d["tokenizer"] = std::string(to_string(c.tokenizer.kind));
  d["embedding"] = std::string(to_string(c.embedding.kind));
  d["n_layers"] = c.n_layers;
  d["d_model"] = c.d_model;
  d["backend"] = h.backend;
  d["dtype"] = h.model->q8_matrices() ? "q8_0" : h.model->bf16_matrices() ? "bf16" : "f32";
  d["bf16_matrices"] = h.model->bf16_matrices();
  d["q8_matrices"] = h.model->q8_matrices();
  d["weight_bytes"] = h.model->weight_bytes();
  d["prepared_bytes"] = h.model->prepared_bytes();
  d["mmap"] = h.mmap;
  d["threads"] = cli::effective_threads(h.threads);
  return d;
}

// One classify() input as the Classifier wants it, its memory kept here.
struct Inputs {
  std::vector<std::vector<int32_t>> tokens;
  std::vector<std::vector<float>> values;
  std::vector<ClassifierInput> refs;
  py::object keep;  // an int32 array read in place
};

std::vector<float> pixels_of(const ModelHandle& h, py::handle obj, const std::string& what) {
  std::vector<float> out;
  auto push = [&](long long v) {
    if (v < 0 || v > 255)
      throw py::value_error(what + ": pixel value " + std::to_string(v) + " is outside 0..255");
    out.push_back(h.tok.normalize(static_cast<uint8_t>(v)));
  };
  if (py::isinstance<py::array>(obj)) {
    auto a = py::reinterpret_borrow<py::array>(obj);
    const char kind = a.dtype().kind();
    if (kind != 'i' && kind != 'u')
      throw py::type_error(what + ": pixels must be integers 0..255 (this model normalizes them itself), got a "
                           "numpy array of " + std::string(py::str(a.dtype())));
    auto v = py::array_t<int64_t, py::array::c_style | py::array::forcecast>::ensure(a);
    out.reserve(static_cast<size_t>(v.size()));
    for (py::ssize_t i = 0; i < v.size(); ++i) push(v.data()[i]);  // any shape: flattened (an image's rows)
    return out;
  }
  if (py::isinstance<py::str>(obj) || !py::isinstance<py::sequence>(obj))
    throw py::type_error(what + ": this model takes pixels: a list or array of integers 0..255, got " +
                         std::string(py::str(py::type::handle_of(obj).attr("__name__"))));
  for (py::handle item : py::reinterpret_borrow<py::sequence>(obj)) {
    if (PyBool_Check(item.ptr()) || !PyIndex_Check(item.ptr()))
      throw py::type_error(what + ": pixels must be integers 0..255, got " +
                           std::string(py::str(py::type::handle_of(item).attr("__name__"))));
    push(py::cast<long long>(py::reinterpret_steal<py::object>(PyNumber_Index(item.ptr()))));
  }
  return out;
}

Inputs classify_inputs(const ModelHandle& h, py::handle inputs, py::object lengths) {
  Inputs in;
  const bool real = h.config().embedding.kind == EmbeddingConfig::Kind::real;
  if (py::isinstance<py::array>(inputs) && py::reinterpret_borrow<py::array>(inputs).ndim() == 2) {
    auto a = py::reinterpret_borrow<py::array>(inputs);
    const int64_t B = a.shape(0), n = a.shape(1);
    std::vector<int64_t> lens(static_cast<size_t>(B), n);
    if (!lengths.is_none()) {
      std::vector<int32_t> l = to_tokens(lengths, "lengths");
      if (static_cast<int64_t>(l.size()) != B)
        throw py::value_error("lengths has " + std::to_string(l.size()) + " entries for " + std::to_string(B) +
                              " rows of inputs");
      for (int64_t b = 0; b < B; ++b) {
        if (l[static_cast<size_t>(b)] < 1 || l[static_cast<size_t>(b)] > n)
          throw py::value_error("lengths[" + std::to_string(b) + "] = " + std::to_string(l[static_cast<size_t>(b)]) +
                                " is outside 1.." + std::to_string(n) + " (the inputs' width)");
        lens[static_cast<size_t>(b)] = l[static_cast<size_t>(b)];
      }
    }
    if (!real && a.dtype().is(py::dtype::of<int32_t>()) && (a.flags() & py::array::c_style)) {
      in.keep = a;  // read in place: no copy
      const int32_t* p = static_cast<const int32_t*>(a.data());
      for (int64_t b = 0; b < B; ++b)
        in.refs.push_back({std::span<const int32_t>(p + b * n, static_cast<size_t>(lens[static_cast<size_t>(b)])), {}});
      return in;
    }
    for (int64_t b = 0; b < B; ++b) {
      py::object row = a[py::int_(b)];
      row = row[py::slice(0, lens[static_cast<size_t>(b)], 1)];
      const std::string what = "inputs[" + std::to_string(b) + "]";
      if (real) in.values.push_back(pixels_of(h, row, what));
      else in.tokens.push_back(to_tokens(row, what));
    }
  } else {
    if (!lengths.is_none()) throw py::value_error("lengths goes with a padded 2-D numpy array of inputs");
    if (py::isinstance<py::str>(inputs) || py::isinstance<py::bytes>(inputs))
      throw py::type_error("inputs: expected a list of inputs (texts, token lists or pixel arrays), not one " +
                           std::string(py::isinstance<py::str>(inputs) ? "str" : "bytes") + "; wrap it in a list");
    if (!py::isinstance<py::sequence>(inputs) && !py::isinstance<py::array>(inputs))
      throw py::type_error("inputs: expected a list of inputs, got " +
                           std::string(py::str(py::type::handle_of(inputs).attr("__name__"))));
    size_t i = 0;
    for (py::handle item : inputs) {
      const std::string what = "inputs[" + std::to_string(i++) + "]";
      if (py::isinstance<py::str>(item)) {
        if (real)
          throw py::type_error(what + ": a text, but this model takes pixels (integers 0..255)");
        in.tokens.push_back(h.tok.encode(py::cast<std::string>(item)));
      } else if (real) {
        in.values.push_back(pixels_of(h, item, what));
      } else {
        in.tokens.push_back(to_tokens(item, what));
      }
    }
  }
  for (const auto& t : in.tokens) in.refs.push_back({t, {}});
  for (const auto& v : in.values) in.refs.push_back({{}, v});
  return in;
}

py::array_t<float> classify(ModelHandle& h, py::handle inputs, py::object lengths, int64_t batch,
                            std::optional<int> threads) {
  if (h.is_lm())
    throw py::value_error(h.model->dir().string() + " is a language model ('lm'); classify needs a classifier model");
  positive(batch, "batch");
  const int t = h.threads_or_default(threads);
  Inputs in = classify_inputs(h, inputs, lengths);
  const int64_t C = h.config().classifier->num_classes;
  py::array_t<float> out({static_cast<py::ssize_t>(in.refs.size()), static_cast<py::ssize_t>(C)});
  if (in.refs.empty()) return out;
  std::span<float> logits(out.mutable_data(), in.refs.size() * static_cast<size_t>(C));
  {
    py::gil_scoped_release nogil;  // the logits go straight into the numpy array
    ClassifierOptions o;
    o.batch = batch;
    o.threads = t;
    std::unique_lock lock(h.classifier_mutex, std::try_to_lock);
    if (lock.owns_lock()) {  // reuse the cached Classifier when it has these options
      if (!h.classifier || h.classifier->options().batch != batch || h.classifier->options().threads != t)
        h.classifier = std::make_unique<Classifier>(h.model, o);
      h.classifier->classify(in.refs, logits);
    } else {  // another thread is using it: a Classifier of our own
      Classifier(h.model, o).classify(in.refs, logits);
    }
  }
  return out;
}

std::vector<std::string> classify_jsonl(ModelHandle& h, std::vector<std::string> lines, const std::string& source,
                                        int64_t first_line, int64_t first_index, int64_t batch, bool logits,
                                        std::optional<int> threads) {
  if (h.is_lm())
    throw py::value_error(h.model->dir().string() + " is a language model ('lm'); classify needs a classifier model");
  positive(first_line, "first_line");
  non_negative(first_index, "first_index");
  positive(batch, "batch");
  cli::ClassifyJobOptions o;
  o.batch = batch;
  o.logits = logits;
  o.threads = h.threads_or_default(threads);
  for (std::string& l : lines)  // lines as read from a file may keep their newline
    while (!l.empty() && (l.back() == '\n' || l.back() == '\r')) l.pop_back();
  py::gil_scoped_release nogil;
  cli::ClassifyJob job(h.model, o);
  return cli::classify_jsonl_lines(job, lines, source, first_line, first_index);
}

py::dict perplexity(ModelHandle& h, py::handle text, int64_t chunk, std::optional<int> threads, bool per_byte) {
  const std::string bytes = to_bytes(text, "text");
  if (!h.is_lm() || h.config().tokenizer.kind != TokenizerConfig::Kind::bytes)
    throw py::value_error(h.model->dir().string() + " is not a causal LM with the bytes tokenizer; perplexity in "
                          "bits per byte needs one");
  if (bytes.empty()) throw py::value_error("text: the text is empty; nothing to score");
  positive(chunk, "chunk");
  cli::PerplexityScoreOptions o;
  o.chunk = chunk;
  o.threads = h.threads_or_default(threads);
  std::vector<float> logprobs;
  cli::PerplexityResult r;
  {
    py::gil_scoped_release nogil;
    cli::ByteLogprobSink sink;
    if (per_byte) {
      logprobs.reserve(bytes.size());
      sink = [&](int64_t, int, double lp) { logprobs.push_back(static_cast<float>(lp)); };
    }
    r = cli::score_perplexity(h.model, bytes, "<text>", o, sink);
  }
  py::dict d;
  d["bits_per_byte"] = r.bits_per_byte;
  d["perplexity_per_byte"] = r.perplexity_per_byte;
  d["nats_per_byte"] = r.nats_per_byte;
  d["bytes"] = r.bytes;
  d["tokens"] = r.tokens;
  d["chunk"] = chunk;
  d["seconds"] = r.seconds;
  d["tokens_per_second"] = r.tokens_per_second;
  d["threads"] = cli::effective_threads(o.threads);
  if (per_byte) {
    const auto n = static_cast<py::ssize_t>(logprobs.size());
    d["logprobs"] = owned_array(std::move(logprobs), {n});
  }
  return d;
}

}  // namespace

void register_model(py::module_& m) {
  m.def("load", &load, py::arg("path") = py::none(), py::arg("backend") = "auto", py::arg("threads") = 0,
        py::arg("mmap") = true,
        "Loads a model directory (config.json + model.safetensors). path None: $LONGVQ_MODEL, else the default "
        "model. backend: 'auto' (CUDA when there is a GPU), 'cpu' or 'cuda'. threads: the CPU threads of the "
        "sessions the model makes (0 = all cores). mmap: map the weights instead of reading them. Raises "
        "LoadError (an OSError) with the loader's message.");
  m.def("_default_sampling", [] {
    const SamplerParams s;
    py::dict d;
    d["temperature"] = s.temperature;
    d["top_k"] = s.top_k;
    d["top_p"] = s.top_p;
    d["min_p"] = s.min_p;
    d["repeat_penalty"] = s.repeat_penalty;
    d["repeat_last_n"] = s.repeat_last_n;
    return d;
  }, "The sampler's defaults (engine/serving/sampler.h), which `longvq generate` also uses.");

  py::class_<ModelHandle, ModelPtr>(m, "Model", "A loaded model (immutable; share it between threads).")
      .def_readonly("path", &ModelHandle::path, "The model directory.")
      .def_readonly("backend", &ModelHandle::backend, "'cpu' or 'cuda'.")
      .def_readonly("threads", &ModelHandle::threads, "load()'s threads: the default of every call (0 = all cores).")
      .def_readonly("config_json", &ModelHandle::config_json, "config.json's text.")
      .def("info", &info, "A dict: task, parameters, vocab size, classes, state bytes per row, backend, dtype ...")
      .def("encode", [](const ModelHandle& h, const std::string& text) {
        return h.tok.encode(text);
      }, py::arg("text"), "The token ids of a text (bytes or vocab tokenizer; no <bos>).")
      .def("decode", [](const ModelHandle& h, py::handle ids) {
        return py::bytes(h.tok.decode(to_tokens(ids, "ids")));
      }, py::arg("ids"), "The bytes token ids stand for.")
      .def("special_id", [](const ModelHandle& h, const std::string& name) -> py::object {
        const auto& s = h.config().tokenizer.specials;
        if (h.config().tokenizer.kind != TokenizerConfig::Kind::bytes ||
            std::find(s.begin(), s.end(), name) == s.end())
          return py::none();
        return py::int_(h.tok.special_id(name));
      }, py::arg("name"), "The id of a special token such as '<bos>' or '<eos>', None when there is none.")
      .def("classify", &classify, py::arg("inputs"), py::arg("lengths") = py::none(), py::arg("batch") = 16,
           py::arg("threads") = py::none(), "Class logits [B, C] (see longvq.Model.classify).")
      .def("classify_jsonl", &classify_jsonl, py::arg("lines"), py::arg("source") = "<input>",
           py::arg("first_line") = 1, py::arg("first_index") = 0, py::arg("batch") = 16, py::arg("logits") = false,
           py::arg("threads") = py::none(), "`longvq classify`'s output lines for these JSONL lines.")
      .def("perplexity", &perplexity, py::arg("text"), py::arg("chunk") = 512, py::arg("threads") = py::none(),
           py::arg("per_byte") = false, "Bits per byte of a text, as `longvq perplexity` scores it.");
}

}  // namespace longvq::py_binding
