"""One blueprint per resource. Views are thin: parse (marshmallow, through
flask-smorest), call a service function, present.

`@blp.arguments` gets schema instances, not classes: given a class, webargs builds a
new schema for every request (2-3 % of web CPU in the profile)."""
