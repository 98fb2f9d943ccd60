"""``jaxgreen ledger report|plot|merge|card``: price tags, curves, merging of ledgers, and
the report where it lands (model card, paper appendix, NeurIPS answer, EU AI Act).

Each LEDGER is a ``.sqlite`` file or the URL of a ledger server
(``postgresql://user@host:port/db``, the ``[postgres]`` extra).
"""

from __future__ import annotations

import argparse
import json
import sys


def add(sub: argparse._SubParsersAction) -> None:
  p = sub.add_parser(
      "ledger", help="price tags, curves and merging of jaxgreen ledgers",
      description="Reads ledgers written by jaxgreen.Experiment: the price tag of "
                  "Equation 1 (E x D x H), budget/performance curves, and merging the "
                  "ledgers of several machines without double counting. A ledger is a "
                  ".sqlite file or a ledger server's URL (postgresql://user@host:port/db).")
  p.add_argument("--debug", action="store_true", help="show tracebacks")
  lsub = p.add_subparsers(dest="ledger_command", metavar="ACTION", required=True)

  r = lsub.add_parser("report", help="the price tag: per trial and in total")
  r.add_argument("ledger", metavar="LEDGER", help="a .sqlite file or a postgresql:// URL")
  r.add_argument("--experiment", help="only this experiment (default: each one)")
  r.add_argument("--run", help="only one run (script execution): 'latest' or the start of "
                               "a run id (default: every run)")
  fmt = r.add_mutually_exclusive_group()
  fmt.add_argument("--json", action="store_true", help="print JSON")
  fmt.add_argument("--markdown", action="store_true", help="print Markdown")
  r.add_argument("--joules-per-flop", type=float, default=None,
                 help="energy estimate per FLOP when not measured (e.g. 7.1e-13)")
  r.set_defaults(func=run_report)

  q = lsub.add_parser("plot", help="training and expected-max-vs-budget curves (PNG, CSV)")
  q.add_argument("ledger", metavar="LEDGER", help="a .sqlite file or a postgresql:// URL")
  q.add_argument("-o", "--out", required=True, metavar="DIR", help="output folder")
  q.add_argument("--metric", help="the logged metric (needed when several were logged)")
  q.add_argument("--mode", choices=("max", "min"), default="max",
                 help="max for accuracy-like metrics, min for losses (default max)")
  q.add_argument("--experiment", help="only this experiment (needed when the ledger holds "
                                      "several: curves never pool experiments)")
  q.add_argument("--csv-only", action="store_true", help="write CSV, skip PNG")
  q.set_defaults(func=run_plot)

  c = lsub.add_parser(
      "card", help="the report where it lands: model card, paper appendix, checklist",
      description="Writes one experiment's cost where it is reported: a Hugging Face "
                  "model card section (co2_eq_emissions metadata and text), a paper "
                  "appendix (LaTeX or Markdown, with Show Your Work's expected best "
                  "validation score vs budget), the NeurIPS checklist's compute answer, "
                  "and the training compute against the EU AI Act's thresholds.")
  c.add_argument("ledger", metavar="LEDGER", help="a .sqlite file or a postgresql:// URL")
  c.add_argument("--experiment", help="the experiment (needed when the ledger holds several)")
  c.add_argument("--format", choices=("hf", "latex", "markdown", "neurips", "thresholds",
                                      "json"), default="hf",
                 help="hf: model card section (default); latex / markdown: paper appendix; "
                      "neurips: checklist answer; thresholds: EU AI Act; json: all figures")
  c.add_argument("--metric", help="the validation metric for the budget curve")
  c.add_argument("--mode", choices=("max", "min"), default="max",
                 help="max for accuracy-like metrics, min for losses (default max)")
  c.add_argument("--training-type", choices=("pre-training", "fine-tuning"),
                 default="pre-training", help="for the model card's metadata")
  c.add_argument("--joules-per-flop", type=float, default=None,
                 help="energy estimate per FLOP when not measured (e.g. 7.1e-13)")
  c.add_argument("-o", "--out", metavar="FILE", help="write here (default: print)")
  c.set_defaults(func=run_card)

  m = lsub.add_parser("merge", help="combine ledgers; rows already present are skipped")
  m.add_argument("sources", nargs="+", metavar="LEDGER")
  m.add_argument("-o", "--out", required=True, metavar="OUT",
                 help="the merged ledger (created, or added to if it exists): a .sqlite "
                      "file, or a postgresql:// URL to upload offline files to a server")
  m.set_defaults(func=run_merge)


def run_report(args: argparse.Namespace) -> int:
  from jaxgreen._src.account import Ledger

  with Ledger(args.ledger, readonly=True) as led:
    names = [args.experiment] if args.experiment else led.experiments()
    tags = [led.price_tag(n, joules_per_flop=args.joules_per_flop, run=args.run)
            for n in names]
  if args.json:
    json.dump([t.to_dict() for t in tags], sys.stdout, indent=2)
    print()
  elif not tags:
    print(f"{led.path}: no trials recorded yet")  # a URL's password masked
  else:
    print("\n\n".join(t.markdown() if args.markdown else t.table() for t in tags))
  return 0


def run_plot(args: argparse.Namespace) -> int:
  from jaxgreen import curves
  from jaxgreen._src.account import Ledger

  with Ledger(args.ledger, readonly=True) as led:
    paths = curves.plot(led, args.out, args.metric, mode=args.mode,
                        experiment=args.experiment, png=not args.csv_only)
  for p in paths:
    print(p)
  return 0


def run_merge(args: argparse.Namespace) -> int:
  from jaxgreen._src.account import merge
  from jaxgreen._src.account._postgres import is_url, mask

  added = merge(args.sources, args.out)
  out = mask(args.out) if is_url(args.out) else args.out
  print(f"{out}: added " + ", ".join(f"{n} {t}" for t, n in added.items()))
  return 0


def run_card(args: argparse.Namespace) -> int:
  from jaxgreen._src.account.card import report

  rep = report(args.ledger, args.experiment, metric=args.metric, mode=args.mode,
               training_type=args.training_type, joules_per_flop=args.joules_per_flop)
  text = {"hf": rep.model_card, "latex": rep.latex, "markdown": rep.markdown,
          "neurips": lambda: rep.neurips() + "\n", "thresholds": lambda: rep.thresholds() + "\n",
          "json": lambda: json.dumps(rep.to_dict(), indent=2) + "\n"}[args.format]()
  if args.out:
    with open(args.out, "w", encoding="utf-8") as f:
      f.write(text)
    print(args.out)
  else:
    sys.stdout.write(text)
  return 0
