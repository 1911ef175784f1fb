"""Export a converted network to other tools: NIR graphs (``nir_graph``), read by sinabs and others."""
