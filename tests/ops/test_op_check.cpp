// check_op_call's refusals: a malformed call is refused with a message naming the op, the slot,
// what was expected and what was found (engine/ops/op_check.cpp).
#include <catch2/catch.hpp>

#include <stdexcept>
#include <string>
#include <vector>

#include "engine/ops/op.h"
#include "engine/ops/op_check.h"
#include "tests/ops/op_cases.h"

using namespace longvq;
using namespace longvq::optest;

namespace {

std::string refusal(const Case& c) {
  try {
    check_op_call(c.call());
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST_CASE("check_op_call refuses malformed calls and says why", "[op_check]") {
  Rng r(15);
  auto expect_refusal = [](const Case& c, std::vector<std::string> parts) {
    const std::string msg = refusal(c);
    INFO("message: " << msg);
    REQUIRE(!msg.empty());
    for (const std::string& p : parts) CHECK(msg.find(p) != std::string::npos);
  };
  const Case lin = linear_cases()[20];
  REQUIRE(refusal(lin).empty());
  {
    Case c = lin;
    c.in[1] = f32(r, {lin.in[1].shape()[0], lin.in[1].shape()[1] + 1});
    expect_refusal(c, {"linear", "input 1 (W)", "expected shape [67, 300]", "found [67, 301]"});
  }
  {
    Case c = lin;
    c.in.pop_back();
    expect_refusal(c, {"linear", "expected 3 inputs", "found 2"});
  }
  {
    Case c = lin;  // only W may be in a backend's private layout
    c.in[0] = Buffer(DType::f32, lin.in[0].shape(), lin.in[0].bytes(), 1);
    expect_refusal(c, {"linear", "input 0 (x)", "must be dense row-major", "private layout 1"});
  }
  {
    Case c = lin;
    c.in[1] = i32_rand(r, lin.in[1].shape(), 0, 1);
    expect_refusal(c, {"linear", "input 1 (W)", "expected dtype f32, bf16 or q8_0, found i32"});
  }
  {
    Case c = lin;
    c.alias = 0;  // output 0 written over x: linear cannot run in place
    c.out[0] = out(DType::f32, c.in[0].shape());
    c.in[1] = f32(r, {c.in[0].shape().back(), c.in[0].shape().back()});
    c.in[2] = Buffer();
    expect_refusal(c, {"linear", "output 0 (y)", "overlaps input 0 (x)"});
  }
  AttnSpec s{2, 5, 3, 4, 6, 2, false, false, false, true, {0, 7}};
  const Case att = make_attention(r, s);
  REQUIRE(refusal(att).empty());
  {
    Case c = att;
    c.params.bidirectional = true;
    c.in[5] = f32(r, {5});
    expect_refusal(c, {"vq_attention", "stateful", "causal"});
  }
  {
    Case c = att;
    c.in[5] = f32(r, {4});
    expect_refusal(c, {"vq_attention", "input 5 (rel_bias)", "[W + 1]", "found [4]"});
  }
  {
    Case c = att;
    c.in[9] = Buffer();
    expect_refusal(c, {"vq_attention", "input 9 (ring_keys)", "missing"});
  }
  {
    Case c = att;
    c.in[3] = f32(r, {2, 5});
    expect_refusal(c, {"input 3 (codes)", "expected dtype i32", "found f32"});
  }
  {
    Case c = att;
    c.in[2] = f32(r, {2, 5, 5});
    expect_refusal(c, {"input 8 (ring_values)", "[R, W, h]"});
  }
  {
    AttnSpec t{2, 5, 3, 4, 6, 2, true, false, false, false, {}};
    Case c = make_attention(r, t);
    REQUIRE(refusal(c).empty());
    c.in[6] = i32({2}, {5, 5});  // lengths without has_lengths
    expect_refusal(c, {"input 6 (lengths)", "must be absent", "has_lengths is false"});
  }
  {
    Case c = make_ema(r, 2, 5, 3, 4, false, false, true);
    REQUIRE(refusal(c).empty());
    c.in[6] = Buffer();
    expect_refusal(c, {"ema", "input 6 (state)", "missing", "stateful"});
    Case d = make_ema(r, 2, 5, 3, 4, true, false, false);
    d.in[1] = f32(r, {3, 4});  // bidirectional needs D' = 2d rows
    expect_refusal(d, {"ema", "input 1 (q)", "[6, 4]", "2d"});
  }
  {
    Case c = norm_cases()[0];  // layernorm, affine
    c.in[2] = Buffer();
    expect_refusal(c, {"norm", "input 2 (bias)", "missing", "layernorm"});
  }
  {
    Case c = mix_gates_cases()[1];
    c.out[3] = out(DType::f32, {1, 7, 3});  // h = 3 no longer adds up to mx's width
    expect_refusal(c, {"mix_gates", "input 0 (mx)", "2d + e + h"});
  }
  {
    // A W = 0 stateful call may pass its (empty) ring as zero-size tensors or leave it out.
    AttnSpec t{2, 3, 3, 4, 6, 0, false, false, false, true, {0, 4}};
    Case c = make_attention(r, t);
    CHECK(refusal(c).empty());
    c.in[7] = c.in[8] = c.in[9] = Buffer();
    CHECK(refusal(c).empty());
  }
  {
    Case c = make_ema(r, 2, 5, 3, 4, false, false, true);
    c.in[static_cast<size_t>(EmaIn::state)] = f32(r, {4, 3, 4});  // 4 state rows, 2 batch rows, no state_rows
    expect_refusal(c, {"ema", "input 6 (state)", "4 rows but the call 2", "pass state_rows"});
    c.in[static_cast<size_t>(EmaIn::state_rows)] = i32({3}, {0, 1, 2});
    expect_refusal(c, {"ema", "input 7 (state_rows)", "expected shape [2]"});
    c.in[static_cast<size_t>(EmaIn::state_rows)] = i32({2}, {3, 1});
    CHECK(refusal(c).empty());
  }
  {  // descriptors name the params an op reads, and only those
    OpParams p;
    p.activation = Activation::silu;
    p.window = 7;
    CHECK(describe_op(OpKind::linear, p) == "linear(activation=1)");
    CHECK(describe_op(OpKind::add, p) == "add()");
    CHECK(describe_op(OpKind::vq_attention, p) ==
          "vq_attention(bidirectional=0, stateful=0, has_lengths=0, window=7, quantize_window_keys=1)");
  }
  {
    Case c = elementwise_cases()[1];  // mul in place of input 0
    REQUIRE(c.alias == 0);
    CHECK(refusal(c).empty());
  }
}
