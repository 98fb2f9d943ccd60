"""Cost rules, one module per family. Importing this package registers them all."""

from jaxgreen.jaxpr.rules import control_flow as control_flow
from jaxgreen.jaxpr.rules import elementwise as elementwise
from jaxgreen.jaxpr.rules import indexing as indexing
from jaxgreen.jaxpr.rules import linalg as linalg
from jaxgreen.jaxpr.rules import pallas as pallas
from jaxgreen.jaxpr.rules import parallel as parallel
from jaxgreen.jaxpr.rules import random as random
from jaxgreen.jaxpr.rules import reductions as reductions
