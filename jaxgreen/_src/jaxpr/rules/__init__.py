"""Cost rules, one module per family. Importing this package registers them all."""

from jaxgreen._src.jaxpr.rules import control_flow as control_flow
from jaxgreen._src.jaxpr.rules import elementwise as elementwise
from jaxgreen._src.jaxpr.rules import indexing as indexing
from jaxgreen._src.jaxpr.rules import linalg as linalg
from jaxgreen._src.jaxpr.rules import pallas as pallas
from jaxgreen._src.jaxpr.rules import parallel as parallel
from jaxgreen._src.jaxpr.rules import random as random
from jaxgreen._src.jaxpr.rules import reductions as reductions
