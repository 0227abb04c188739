"""MLflow's basic-auth app with this project's identities and the rules MLflow cannot express.

`identities` names who exists and what each may do, `policy` decides a request (pure),
`plugin` is the authorization function MLflow calls, `bootstrap` creates the users and
their permissions (idempotent), `launch` starts `mlflow server --app-name basic-auth`.
"""
