// Who holds a record in the store (a gc run, a verification run, the upgrade's lease), and
// whether that holder is gone: the process named "host:pid" on this host no longer runs.
// A holder is judged gone only when this process can tell for sure: the same host name, and,
// when the record carries the holder's start token, the same boot and pid namespace (so a
// container that shares the host name but not the pids, or a machine with the same name,
// never declares another's holder dead) and a pid that is either absent or now a different
// process (started at another time: the pid was reused). Anything else is "not gone": the
// record then expires by its heartbeat, as before.
// Thread-safety: every function from any thread.
#pragma once

#include <string>

namespace snapvol {

// This host's name (gethostname; empty if it fails).
std::string ThisHostName();
// "host:pid" of this process.
std::string ThisProcessHolder();
// "<boot id> <pid namespace> <start time in clock ticks since boot>" of this process; empty
// when /proc cannot tell (then records carry none and the older check, pid gone, applies).
std::string ThisProcessStartToken();
// The same for any pid of this pid namespace; empty when it does not exist or /proc cannot tell.
std::string ProcessStartToken(long pid);

// True when no process of this pid namespace has pid, or only a zombie or dead one (killed,
// not yet reaped by its parent).
bool ProcessGone(long pid);

// Whether holder (a "host:pid" word, possibly with other words around it, as in
// "store upgrade host:pid" or "host:pid (verification)") names a process of this host that is
// gone. start_token: what ThisProcessStartToken said in the holder, or empty for a record
// written without one (judged by the pid alone). Never true for this process itself.
bool HolderIsGone(const std::string& holder, const std::string& start_token);

}  // namespace snapvol
