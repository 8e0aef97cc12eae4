#include "tools/cli/bench_report.h"

#include <algorithm>

#include <nlohmann/json.hpp>

#include "tools/cli/common.h"
#include "tools/cli/stats.h"

namespace longvq::cli {

namespace {

std::vector<double> as_double(const std::vector<int64_t>& v) { return {v.begin(), v.end()}; }

std::string si(double v) {  // 910596 → "910.60 K"
  if (v >= 1e9) return strf("%.2f G", v / 1e9);
  if (v >= 1e6) return strf("%.2f M", v / 1e6);
  if (v >= 1e3) return strf("%.2f K", v / 1e3);
  return strf("%.0f", v);
}

std::string csv_field(const std::string& s) {
  if (s.find_first_of(",\"\n") == std::string::npos) return s;
  std::string q = "\"";
  for (char c : s) q += c == '"' ? std::string("\"\"") : std::string(1, c);
  return q + "\"";
}

}  // namespace

double BenchRow::avg_ns() const { return mean(as_double(samples_ns)); }
double BenchRow::stddev_ns() const { return stddev(as_double(samples_ns)); }
double BenchRow::avg_rate() const { return mean(samples_rate); }
double BenchRow::stddev_rate() const { return stddev(samples_rate); }

void write_markdown(std::ostream& out, const std::vector<BenchRow>& rows) {
  const std::vector<std::string> head = {"model", "params", "weights", "state/seq", "arena", "backend", "threads", "test",
                                         "rate"};
  const std::vector<bool> right = {false, true, true, true, true, false, true, false, true};
  std::vector<std::vector<std::string>> cells;
  for (const BenchRow& r : rows)
    cells.push_back({r.model, si(static_cast<double>(r.model_params)), human_bytes(static_cast<double>(r.weight_bytes)),
                     r.state_bytes ? human_bytes(static_cast<double>(r.state_bytes)) : "-",
                     human_bytes(static_cast<double>(r.arena_bytes)), r.backend, std::to_string(r.threads), r.test,
                     strf("%.2f ± %.2f %s", r.avg_rate(), r.stddev_rate(), r.unit.c_str())});
  std::vector<size_t> width(head.size());
  for (size_t c = 0; c < head.size(); ++c) {
    width[c] = head[c].size();
    for (const auto& row : cells) width[c] = std::max(width[c], row[c].size() - (c == 8 ? 1 : 0));  // "±" is 2 bytes
  }
  auto line = [&](const std::vector<std::string>& v) {
    out << "|";
    for (size_t c = 0; c < v.size(); ++c) {
      const size_t len = v[c].size() - (v[c].find("±") != std::string::npos ? 1 : 0);
      const std::string pad(width[c] > len ? width[c] - len : 0, ' ');
      out << " " << (right[c] ? pad + v[c] : v[c] + pad) << " |";
    }
    out << "\n";
  };
  line(head);
  out << "|";
  for (size_t c = 0; c < head.size(); ++c) out << " " << std::string(width[c] - (right[c] ? 1 : 0), '-') << (right[c] ? ":" : "") << " |";
  out << "\n";
  for (const auto& row : cells) line(row);
  if (!rows.empty())
    out << "\nbuild: " << rows[0].build_commit << " | CPU: " << rows[0].cpu << " | " << rows[0].repetitions
        << " repetitions after " << rows[0].warmup << " warmup, mean ± sample stddev\n";
}

void write_csv(std::ostream& out, const std::vector<BenchRow>& rows) {
  out << "build_commit,cpu,backend,threads,model,model_params,weight_bytes,state_bytes,arena_bytes,test,n_prompt,n_gen,"
         "n_depth,batch,length,repetitions,warmup,unit,avg_ns,stddev_ns,avg_rate,stddev_rate\n";
  for (const BenchRow& r : rows)
    out << csv_field(r.build_commit) << "," << csv_field(r.cpu) << "," << r.backend << "," << r.threads << ","
        << csv_field(r.model) << "," << r.model_params << "," << r.weight_bytes << "," << r.state_bytes << ","
        << r.arena_bytes << "," << csv_field(r.test) << "," << r.n_prompt << "," << r.n_gen << "," << r.n_depth << ","
        << r.batch << "," << r.length << "," << r.repetitions << "," << r.warmup << "," << r.unit << ","
        << strf("%.0f", r.avg_ns()) << "," << strf("%.0f", r.stddev_ns()) << "," << strf("%.6g", r.avg_rate()) << ","
        << strf("%.6g", r.stddev_rate()) << "\n";
}

void write_json(std::ostream& out, const std::vector<BenchRow>& rows) {
  nlohmann::ordered_json all = nlohmann::ordered_json::array();
  for (const BenchRow& r : rows)
    all.push_back({{"build_commit", r.build_commit}, {"cpu", r.cpu}, {"backend", r.backend}, {"threads", r.threads},
                   {"model", r.model}, {"model_params", r.model_params}, {"weight_bytes", r.weight_bytes},
                   {"state_bytes", r.state_bytes}, {"arena_bytes", r.arena_bytes}, {"test", r.test},
                   {"n_prompt", r.n_prompt}, {"n_gen", r.n_gen}, {"n_depth", r.n_depth}, {"batch", r.batch},
                   {"length", r.length}, {"repetitions", r.repetitions}, {"warmup", r.warmup}, {"unit", r.unit},
                   {"avg_ns", r.avg_ns()}, {"stddev_ns", r.stddev_ns()}, {"avg_rate", r.avg_rate()},
                   {"stddev_rate", r.stddev_rate()}, {"samples_ns", r.samples_ns}, {"samples_rate", r.samples_rate}});
  out << all.dump(2) << "\n";
}

}  // namespace longvq::cli
