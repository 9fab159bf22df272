"""Presentation of the iteration graph (built by :mod:`unfoldc.ir.graph`), apart from the IR.

- :mod:`unfoldc.graphs.style`: how every format draws a node kind and a carry edge.
- :mod:`unfoldc.graphs.order`: the statement order and the phase groups every format follows.
- :mod:`unfoldc.graphs.render`: text, JSON, DOT and Mermaid, and the format dispatcher.
- :mod:`unfoldc.graphs.draw`: SVG and PNG, by Graphviz ``dot`` when it is installed, otherwise
  a networkx layout drawn with matplotlib.
"""
