// Model.session: the engine's Session and State (engine/longvq.h) for step-by-step decoding.
//
// Memory: logits come back as numpy arrays the caller owns. The engine's Session keeps its result
// in a buffer that its next prefill replaces (frees), so a view onto it could dangle; each call
// therefore copies the [rows × V] logits once (what the engine's own callers do), or writes them
// into the caller's `out=` array (no allocation). State tensors, whose memory is fixed for the
// State's life, are returned as read-only views without a copy (State.tensor).
#include <cstring>

#include "binding.h"
#include "engine/runtime/state_layout.h"

namespace longvq::py_binding {

namespace {

// The engine objects of one Python Session: its States keep it (their backend's memory) alive.
struct SessionCore {
  ModelPtr h;
  Session session;
  std::mutex mu;  // one call at a time (a Session is used by one thread at a time)
  SessionCore(ModelPtr m, SessionOptions o) : h(std::move(m)), session(h->model, o) {}
};
using CorePtr = std::shared_ptr<SessionCore>;

struct PyState {
  CorePtr core;
  State state;
};

struct PySession {
  CorePtr core;
};

PyState& check_state(const PySession& s, PyState& st) {
  if (st.core.get() != s.core.get())
    throw py::value_error("this State was made by another Session; a State lives in its Session's memory "
                          "(use session.new_state() or session.load_state())");
  return st;
}

void check_out(py::object out, const std::vector<py::ssize_t>& shape) {
  if (out.is_none()) return;
  if (!py::isinstance<py::array>(out)) throw py::type_error("out: expected a numpy array");
  auto a = py::reinterpret_borrow<py::array>(out);
  if (!a.dtype().is(py::dtype::of<float>())) throw py::type_error("out: must be float32, got " + std::string(py::str(a.dtype())));
  if (!(a.flags() & py::array::c_style) || !a.writeable())
    throw py::value_error("out: must be a writable C-contiguous array");
  std::vector<py::ssize_t> got(a.shape(), a.shape() + a.ndim());
  if (got != shape) {
    std::string want = "(";
    for (size_t i = 0; i < shape.size(); ++i) want += (i ? ", " : "") + std::to_string(shape[i]);
    throw py::value_error("out: must have shape " + want + (shape.size() == 1 ? ",)" : ")"));
  }
}

PyState load_state(PySession& s, py::handle path) {
  const std::string p = to_path(path, "path");
  std::string warning;
  std::optional<State> st;
  {
    py::gil_scoped_release nogil;
    std::lock_guard lock(s.core->mu);
    st.emplace(State::load(p, s.core->session.model(), s.core->session.backend(), &warning));
  }
  if (!warning.empty()) PyErr_WarnEx(PyExc_UserWarning, warning.c_str(), 1);
  return PyState{s.core, std::move(*st)};
}

py::array_t<float> prefill(PySession& s, PyState& st, py::handle tokens, int64_t row, py::object out) {
  check_state(s, st);
  std::vector<int32_t> ids = py::isinstance<py::str>(tokens) ? s.core->h->tok.encode(py::cast<std::string>(tokens))
                                                              : to_tokens(tokens, "tokens");
  const int64_t V = s.core->h->config().vocab_size;
  check_out(out, {static_cast<py::ssize_t>(V)});
  py::array_t<float> res = out.is_none() ? py::array_t<float>(V) : py::reinterpret_borrow<py::array_t<float>>(out);
  float* dst = res.mutable_data();
  {
    py::gil_scoped_release nogil;
    std::lock_guard lock(s.core->mu);
    const std::vector<RowTokens> rows = {{row, ids}};
    std::span<const float> l = s.core->session.prefill(st.state, rows);
    std::memcpy(dst, l.data(), l.size_bytes());
  }
  return res;
}

py::array_t<float> decode(PySession& s, PyState& st, py::handle tokens, py::object rows, py::object out) {
  check_state(s, st);
  const std::vector<int32_t> ids = to_tokens(tokens, "tokens");
  std::vector<int32_t> r;
  if (rows.is_none()) {
    if (static_cast<int64_t>(ids.size()) != st.state.rows())
      throw py::value_error("decode takes one token per row of the state: " + std::to_string(st.state.rows()) +
                            " expected, " + std::to_string(ids.size()) + " given (or name the rows with rows=)");
    for (int64_t i = 0; i < st.state.rows(); ++i) r.push_back(static_cast<int32_t>(i));
  } else {
    r = to_tokens(rows, "rows");
  }
  const int64_t V = s.core->h->config().vocab_size;
  const std::vector<py::ssize_t> shape = {static_cast<py::ssize_t>(r.size()), static_cast<py::ssize_t>(V)};
  check_out(out, shape);
  py::array_t<float> res = out.is_none() ? py::array_t<float>(shape) : py::reinterpret_borrow<py::array_t<float>>(out);
  float* dst = res.mutable_data();
  {
    py::gil_scoped_release nogil;
    std::lock_guard lock(s.core->mu);
    std::span<const float> l = s.core->session.decode(st.state, r, ids);
    std::memcpy(dst, l.data(), l.size_bytes());
  }
  return res;
}

py::array state_tensor(py::object self, const std::string& name) {
  PyState& st = self.cast<PyState&>();
  if (st.state.model().options().backend != BackendKind::cpu)
    throw py::value_error("State.tensor: this state lives in GPU memory; save() it to read it");
  const TensorRef* ref = nullptr;
  try {
    ref = &st.state.tensor(name);
  } catch (const std::exception&) {
    std::string names;
    for (const StateTensor& t : state_layout(st.state.model().config())) names += (names.empty() ? "" : ", ") + t.name;
    throw py::key_error("no state tensor '" + name + "'; this model's: " + names);
  }
  py::dtype dt = ref->dtype == DType::f32   ? py::dtype::of<float>()
                 : ref->dtype == DType::i32 ? py::dtype::of<int32_t>()
                                            : py::dtype::of<int64_t>();
  std::vector<py::ssize_t> shape(ref->shape.begin(), ref->shape.end());
  // A view onto the State's memory (fixed for its life), kept alive by the State object.
  py::array a(dt, shape, {}, ref->data, self);
  a.attr("flags").attr("writeable") = false;
  return a;
}

}  // namespace

void register_session(py::module_& m) {
  py::class_<PyState>(m, "State",
                      "The decoding state of R sequences (rows) of a causal LM: a fixed size whatever the "
                      "context length. Made by Session.new_state or Session.load_state; used by one call at a time.")
      .def_property_readonly("rows", [](const PyState& s) { return s.state.rows(); }, "How many sequences it holds.")
      .def("position", [](const PyState& s, int64_t row) {
        if (row < 0 || row >= s.state.rows())
          throw py::index_error("row " + std::to_string(row) + " is outside the state's rows 0.." +
                                std::to_string(s.state.rows() - 1));
        return s.state.positions()[static_cast<size_t>(row)];
      }, py::arg("row") = 0, "Tokens row `row` has consumed.")
      .def_property_readonly("positions", [](const PyState& s) { return s.state.positions(); },
                             "Tokens each row has consumed.")
      .def_property_readonly("bytes_per_row", [](const PyState& s) { return s.state.bytes_per_sequence(); },
                             "Bytes of one row's state (constant in the context length).")
      .def("reset", [](PyState& s, std::optional<int64_t> row) {
        py::gil_scoped_release nogil;
        std::lock_guard lock(s.core->mu);
        if (row) s.state.reset(*row);
        else s.state.reset();
      }, py::arg("row") = py::none(), "Back to the empty context: one row, or every row (None).")
      .def("save", [](const PyState& s, py::handle path, std::optional<int64_t> row) {
        const std::string p = to_path(path, "path");
        py::gil_scoped_release nogil;
        std::lock_guard lock(s.core->mu);
        if (row) s.state.save_row(p, *row);
        else s.state.save(p);
      }, py::arg("path"), py::arg("row") = py::none(),
         "Writes the state (or one row as a 1-row state) to a file, atomically (docs/file-formats.md §3).")
      .def_static("load", [](py::handle path, PySession& session) { return load_state(session, path); },
                  py::arg("path"), py::arg("session"),
                  "State.load(path, session): a state file read into a new State of `session` (the same as "
                  "session.load_state(path)).")
      .def("load_row", [](PyState& s, py::handle path, int64_t row) {
        const std::string p = to_path(path, "path");
        std::string warning;
        {
          py::gil_scoped_release nogil;
          std::lock_guard lock(s.core->mu);
          s.state.load_row(p, row, &warning);
        }
        if (!warning.empty()) PyErr_WarnEx(PyExc_UserWarning, warning.c_str(), 1);
      }, py::arg("path"), py::arg("row"), "Reads a 1-row state file into row `row`.")
      .def("set_row", [](PyState& s, int64_t row, const PyState& src, int64_t src_row) {
        if (s.core.get() != src.core.get())
          throw py::value_error("set_row: both States must belong to the same Session");
        py::gil_scoped_release nogil;
        std::lock_guard lock(s.core->mu);
        s.state.set_row(row, src.state, src_row);
      }, py::arg("row"), py::arg("src"), py::arg("src_row") = 0, "Makes row `row` a copy of src's row `src_row`.")
      .def("tensor", &state_tensor, py::arg("name"),
           "A read-only numpy view (no copy) of a state tensor, e.g. 'state.pos' or 'state.layers.0.ema', "
           "[rows, ...]: it follows the state as it changes and keeps the State alive.")
      .def_property_readonly("tensor_names", [](const PyState& s) {
        std::vector<std::string> names;
        for (const StateTensor& t : state_layout(s.state.model().config())) names.push_back(t.name);
        return names;
      }, "The names State.tensor takes, in file order.");

  py::class_<PySession>(m, "Session",
                        "A causal LM's decoding session (its threads and planned graphs): use it from one thread at "
                        "a time (calls from several threads take turns).")
      .def_property_readonly("max_batch", [](const PySession& s) { return s.core->session.options().max_batch; })
      .def_property_readonly("max_chunk", [](const PySession& s) { return s.core->session.options().max_chunk; })
      .def_property_readonly("vocab_size", [](const PySession& s) { return s.core->h->config().vocab_size; })
      .def("new_state", [](PySession& s, int64_t batch) {
        positive(batch, "batch");
        std::lock_guard lock(s.core->mu);
        return PyState{s.core, s.core->session.new_state(batch)};
      }, py::arg("batch") = 1, "A new State of `batch` empty rows.")
      .def("load_state", &load_state, py::arg("path"),
           "Reads a state file (State.save, `longvq generate --state-out`) into a new State.")
      .def("prefill", &prefill, py::arg("state"), py::arg("tokens"), py::arg("row") = 0, py::arg("out") = py::none(),
           "Row `row` consumes `tokens` (ids, or a str encoded by the tokenizer; no <bos> is added); returns the "
           "logits after the last one, [V] float32.")
      .def("decode", &decode, py::arg("state"), py::arg("tokens"), py::arg("rows") = py::none(),
           py::arg("out") = py::none(),
           "One token for each of `rows` (every row when None): returns their next-token logits [len(rows), V].")
      .def("describe_plans", [](PySession& s) {
        std::lock_guard lock(s.core->mu);
        return s.core->session.describe_plans();
      }, "The memory plans of the graphs built so far.");

  m.def("_session", [](ModelPtr h, int64_t max_batch, int64_t max_chunk, std::optional<int> threads) {
    if (!h->is_lm())
      throw py::value_error(h->model->dir().string() + " is a classifier; sessions with a State need a causal LM "
                            "(use classify)");
    SessionOptions o;
    o.max_batch = positive(max_batch, "max_batch");
    o.max_chunk = positive(max_chunk, "max_chunk");
    o.threads = h->threads_or_default(threads);
    return PySession{std::make_shared<SessionCore>(h, o)};
  }, py::arg("model"), py::arg("max_batch"), py::arg("max_chunk"), py::arg("threads"));
}

}  // namespace longvq::py_binding
