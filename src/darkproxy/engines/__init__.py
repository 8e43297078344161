"""What runs proxies: :mod:`.train` (training and validation), :mod:`.evaluate` (a proxy
against fresh darktable renders), :mod:`.regress` (the regression engine, ``darkproxy
regress`` with darktable's proof, the optimisation video, the regress-eval benchmark)."""
