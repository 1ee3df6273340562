"""The MLflow pyfunc model of a promoted program, logged as *code* (MLflow's models-from-code),
so the registry holds this file plus the bundle folder and nothing is pickled.

`mlflow models serve -m models:/NAME@champion --env-manager local` and
`mlflow.pyfunc.load_model(...)` run this file, which loads the bundle with `workbench.load`.
Input: a DataFrame (or records) with the program's input columns; output: one row of output
fields per input row.
"""

from __future__ import annotations

import mlflow.pyfunc
from mlflow.models import set_model


class WorkbenchBundleModel(mlflow.pyfunc.PythonModel):
    def load_context(self, context):
        from workbench.export.loaded import load

        self.program = load(context.artifacts["bundle"])

    def predict(self, context, model_input, params=None):
        import pandas as pd

        records = model_input.to_dict(orient="records") if hasattr(model_input, "to_dict") else list(model_input)
        return pd.DataFrame([self.program.predict(record) for record in records])


set_model(WorkbenchBundleModel())
