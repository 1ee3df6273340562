"""Tools programs can call, one module per family, registered with @tool."""
