"""Authentication and roles: the users file (`users`), who may do what (`access`), and the table
of admin-only controls a built app enforces (`policy`)."""
from playground.auth.access import ADMIN, ANNOTATOR, LOCAL_USER, Access, AccessDenied, User
from playground.auth.users import ROLES, UserTable, UsersFileError, read_users, write_user

__all__ = ["ADMIN", "ANNOTATOR", "LOCAL_USER", "ROLES", "Access", "AccessDenied", "User", "UserTable",
           "UsersFileError", "read_users", "write_user"]
