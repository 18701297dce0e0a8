# Helpers shared by the benchmark scripts (sourced; B and META set by the caller).
now() { date +%s.%N; }
secs() { python3 -c "print(f'{$2 - $1:.2f}')"; }
C() { "$B" ctl --meta "$META" "$@"; }
J() { "$B" ctl --meta "$META" --json "$@"; }
field() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }
