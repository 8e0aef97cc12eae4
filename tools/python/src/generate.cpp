// Model.generate: an iterator over text pieces, stepping the CLI's own turn
// (tools/cli/generate_turn.h) one token at a time, so a seed gives the text `longvq generate` prints.
#include <chrono>
#include <random>

#include "binding.h"
#include "engine/serving/generation.h"
#include "engine/serving/text_stream.h"
#include "tools/cli/generate_turn.h"

namespace longvq::py_binding {

namespace {

class Generator {
 public:
  Generator(ModelPtr h, const std::vector<int32_t>& ids, GenerationParams gp, int threads, int64_t chunk, bool no_bos)
      : h_(std::move(h)), gp_(std::move(gp)), prompt_ids_(ids) {
    cli::check_generate_model(*h_->model);
    SessionOptions so;
    so.max_batch = 1;
    so.max_chunk = chunk;
    so.threads = threads;
    session_ = std::make_unique<Session>(h_->model, so);
    conv_ = std::make_unique<cli::Conversation>(
        cli::Conversation{h_->model, h_->tok, *session_, session_->new_state(1), std::nullopt, {}, false});
    feed_ = cli::turn_feed(std::nullopt, bos_token(h_->tok), /*new_context=*/true, no_bos, ids);
    if (feed_.empty())
      throw py::value_error("the prompt is empty and this model has no <bos> token to start from; give a prompt");
    // The CLI shows the prompt first: generated text then continues it (a vocab model's first
    // word keeps its space), so prompt + text is what `longvq generate` prints.
    conv_->shown_any = !ids.empty();
    conv_->state.check_advance({}, std::max<int64_t>(static_cast<int64_t>(feed_.size()) - 1 + gp_.max_tokens, 0));
  }

  // The next non-empty piece of text, or nothing when the generation is over.
  std::optional<std::string> next() {
    std::lock_guard lock(mu_);
    if (done_) return std::nullopt;
    if (!runner_) runner_ = std::make_unique<cli::TurnRunner>(*conv_, feed_, gp_, false, timing_);  // prefills
    while (!runner_->finished()) {
      const Generation::Step step = runner_->next();
      if (!step.text.empty()) return step.text;
    }
    finish_locked();
    return std::nullopt;
  }

  void close() {
    std::lock_guard lock(mu_);
    if (done_) return;
    if (!runner_) runner_ = std::make_unique<cli::TurnRunner>(*conv_, feed_, gp_, false, timing_);
    finish_locked();
  }

  py::list tokens() {
    std::lock_guard lock(mu_);
    py::list out;
    if (runner_)
      for (const TokenInfo& t : runner_->turn().tokens) out.append(t.id);
    return out;
  }
  py::object logprobs() {
    std::lock_guard lock(mu_);
    if (gp_.logprobs < 0) return py::none();
    py::list out;
    if (runner_)
      for (const TokenInfo& t : runner_->turn().tokens) out.append(t.logprob);
    return out;
  }
  py::object top_logprobs() {
    std::lock_guard lock(mu_);
    if (gp_.logprobs < 1) return py::none();
    py::list out;
    if (runner_)
      for (const TokenInfo& t : runner_->turn().tokens) {
        py::dict d;
        for (const auto& [id, lp] : t.top) d[py::int_(id)] = lp;
        out.append(d);
      }
    return out;
  }
  py::object finish_reason() {
    std::lock_guard lock(mu_);
    if (!done_) return py::none();
    return py::str(finish_reason_name(turn_.reason));
  }
  py::bytes data() {
    std::lock_guard lock(mu_);
    return py::bytes(runner_ ? runner_->turn().text : std::string());
  }
  std::string text() {
    std::lock_guard lock(mu_);
    return to_valid_utf8(runner_ ? runner_->turn().text : std::string());
  }
  int64_t prompt_tokens() {
    std::lock_guard lock(mu_);
    return runner_ ? runner_->turn().prompt_tokens : 0;
  }
  uint64_t seed() const { return gp_.sampling.seed; }
  const std::vector<int32_t>& prompt_ids() const { return prompt_ids_; }
  std::mutex& mutex() { return mu_; }

 private:
  void finish_locked() {
    turn_ = runner_->finish();
    done_ = true;
  }

  ModelPtr h_;
  GenerationParams gp_;
  std::vector<int32_t> prompt_ids_, feed_;
  std::unique_ptr<Session> session_;
  std::unique_ptr<cli::Conversation> conv_;
  cli::Timing timing_;
  std::unique_ptr<cli::TurnRunner> runner_;
  cli::Turn turn_;
  bool done_ = false;
  std::mutex mu_;
};

uint64_t random_seed() {
  std::random_device rd;
  const uint64_t t = static_cast<uint64_t>(std::chrono::system_clock::now().time_since_epoch().count());
  return (t ^ (uint64_t{rd()} << 32) ^ rd()) & 0x7fffffffffffffffULL;
}

std::unique_ptr<Generator> make_generator(ModelPtr h, py::handle prompt, int64_t max_tokens, double temperature,
                                          int64_t top_k, double top_p, double min_p, double repeat_penalty,
                                          int64_t repeat_last_n, std::optional<int64_t> seed, py::object stop,
                                          std::optional<int> logprobs, bool ignore_eos, bool no_bos,
                                          std::optional<int> threads, int64_t chunk) {
  if (!h->is_lm())
    throw py::value_error(h->model->dir().string() + " is a classifier; generate needs a causal language model "
                          "(task 'lm'); use classify");
  std::vector<int32_t> ids;
  if (py::isinstance<py::str>(prompt) || py::isinstance<py::bytes>(prompt))
    ids = h->tok.encode(to_bytes(prompt, "prompt"));
  else
    ids = to_tokens(prompt, "prompt");
  GenerationParams gp;
  gp.max_tokens = non_negative(max_tokens, "max_tokens");
  auto finite_at_least = [](double v, double lo, const char* what) {
    if (!(v >= lo) || v == std::numeric_limits<double>::infinity())
      throw py::value_error(std::string(what) + " must be a finite number >= " + std::to_string(lo).substr(0, 3) +
                            ", got " + std::to_string(v));
    return v;
  };
  auto in_unit = [](double v, const char* what) {
    if (!(v >= 0 && v <= 1)) throw py::value_error(std::string(what) + " must be in [0, 1], got " + std::to_string(v));
    return v;
  };
  gp.sampling.temperature = finite_at_least(temperature, 0, "temperature");
  if (top_k < 0 || top_k > std::numeric_limits<int>::max())
    throw py::value_error("top_k must be >= 0 (0 = all), got " + std::to_string(top_k));
  gp.sampling.top_k = static_cast<int>(top_k);
  gp.sampling.top_p = in_unit(top_p, "top_p");
  gp.sampling.min_p = in_unit(min_p, "min_p");
  if (!(repeat_penalty > 0) || repeat_penalty == std::numeric_limits<double>::infinity())
    throw py::value_error("repeat_penalty must be a finite number > 0 (1 = off), got " + std::to_string(repeat_penalty));
  gp.sampling.repeat_penalty = repeat_penalty;
  if (repeat_last_n < 0 || repeat_last_n > std::numeric_limits<int>::max())
    throw py::value_error("repeat_last_n must be >= 0, got " + std::to_string(repeat_last_n));
  gp.sampling.repeat_last_n = static_cast<int>(repeat_last_n);
  if (seed && *seed < 0) throw py::value_error("seed must be >= 0 (None = random), got " + std::to_string(*seed));
  gp.sampling.seed = seed ? static_cast<uint64_t>(*seed) : random_seed();
  if (!stop.is_none()) {
    if (py::isinstance<py::str>(stop)) {
      gp.stop.push_back(py::cast<std::string>(stop));
    } else {
      if (!py::isinstance<py::sequence>(stop))
        throw py::type_error("stop: expected a str or a list of str, got " +
                             std::string(py::str(py::type::handle_of(stop).attr("__name__"))));
      for (py::handle s : stop) {
        if (!py::isinstance<py::str>(s)) throw py::type_error("stop: every stop string must be a str");
        gp.stop.push_back(py::cast<std::string>(s));
      }
    }
    for (const std::string& s : gp.stop)
      if (s.empty()) throw py::value_error("stop: a stop string must not be empty");
  }
  if (logprobs && (*logprobs < 0 || *logprobs > 20))
    throw py::value_error("logprobs must be in 0..20 (0: the sampled token's only), got " + std::to_string(*logprobs));
  gp.logprobs = logprobs ? *logprobs : -1;
  gp.stop_at_eos = !ignore_eos;
  gp.utf8 = true;  // pieces are whole characters (Python str); the text is the same
  positive(chunk, "chunk");
  const int t = h->threads_or_default(threads);
  return std::make_unique<Generator>(std::move(h), ids, std::move(gp), t, chunk, no_bos);
}

}  // namespace

void register_generate(py::module_& m) {
  py::class_<Generator>(m, "Generator",
                        "An iterator over the text pieces of one generation (Model.generate); .text, .tokens, "
                        ".logprobs and .finish_reason tell what was generated so far.")
      .def("__iter__", [](py::object self) { return self; })
      .def("__next__", [](Generator& g) -> std::string {
        std::optional<std::string> piece;
        {
          py::gil_scoped_release nogil;
          piece = g.next();
        }
        if (!piece) throw py::stop_iteration();
        return to_valid_utf8(*piece);
      })
      .def("close", [](Generator& g) {
        py::gil_scoped_release nogil;
        g.close();
      }, "Ends the generation now (finish_reason 'cancelled' unless it had already stopped).")
      .def_property_readonly("tokens", &Generator::tokens, "The generated token ids so far.")
      .def_property_readonly("logprobs", &Generator::logprobs,
                             "Each generated token's log-probability (natural log, temperature 1), or None "
                             "without logprobs=.")
      .def_property_readonly("top_logprobs", &Generator::top_logprobs,
                             "Per token, a dict {id: log-probability} of the most likely tokens (logprobs=K >= 1).")
      .def_property_readonly("finish_reason", &Generator::finish_reason,
                             "None while running; then 'stop' (<eos> or a stop string), 'length' or 'cancelled'.")
      .def_property_readonly("text", &Generator::text, "The text generated so far (str; invalid UTF-8 → U+FFFD).")
      .def_property_readonly("data", &Generator::data, "The text generated so far as bytes.")
      .def_property_readonly("prompt_tokens", &Generator::prompt_tokens, "Tokens the prefill consumed.")
      .def_property_readonly("prompt_ids", &Generator::prompt_ids, "The prompt's token ids (no <bos>).")
      .def_property_readonly("seed", &Generator::seed, "The sampling seed (drawn at random when None was given).");

  m.def("_generate", &make_generator, py::arg("model"), py::arg("prompt"), py::arg("max_tokens"),
        py::arg("temperature"), py::arg("top_k"), py::arg("top_p"), py::arg("min_p"), py::arg("repeat_penalty"),
        py::arg("repeat_last_n"), py::arg("seed"), py::arg("stop"), py::arg("logprobs"), py::arg("ignore_eos"),
        py::arg("no_bos"), py::arg("threads"), py::arg("chunk"),
        "Model.generate's engine side (see longvq.Model.generate).");
}

}  // namespace longvq::py_binding
