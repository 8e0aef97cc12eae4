// What the process does before any subcommand runs: signal dispositions and the standard
// streams, so that no signal the program itself provokes kills it and a closed stream is
// noticed instead of being reused by the next file opened.
//
//   SIGPIPE   ignored: a write to a closed pipe fails with EPIPE, reported as a failed output
//   SIGXFSZ   ignored: a write past `ulimit -f` fails with EFBIG, reported as a failed write
//   SIGBUS    in a memory-mapped model file (truncated while in use): a message naming the file
//             and --no-mmap, exit 1; any other SIGBUS keeps its default (a crash)
//   SIGINT, SIGTERM, SIGHUP   the unfinished temporary file of an atomic write is removed,
//             then the signal ends the process as usual (unless it was ignored at startup)
//   fds 0-2   a closed one is reopened on /dev/null (stdout read-only, so writes to it fail
//             and are reported); a closed stdin is remembered: stdin_closed()
#pragma once

namespace longvq::cli {

void setup_process();

// Whether the program started with file descriptor 0 closed (`longvq ... <&-`).
bool stdin_closed();

}  // namespace longvq::cli
