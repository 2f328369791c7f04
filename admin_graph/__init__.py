"""django-dagflow's admin face: ModelAdmins, the graph, run views and the editor."""
